"""scripts/cluster from tests: nginx in front of two real gateway processes sharing Redis (under
a fresh key prefix) and a throwaway PostgreSQL database, on free ports, stopped by the test.

    with running_cluster(tmp_dir, config_yaml, master_key=...) as cluster:
        cluster.url, cluster.instances, cluster.access_log(), cluster.usage_rows(ids)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis

from analytics_support import throwaway_database, unavailable
from harness import free_port

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "cluster"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
# Variables of the developer's shell that would change what the instances do.
_AMBIENT = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "QDRANT_URL",
    "CLUSTER_DIR",
)


def cluster_env(**extra: str) -> dict[str, str]:
    """This environment without provider settings or AI_GATEWAY_* variables, running
    scripts/cluster with this interpreter (and so this checkout's source)."""
    env = {
        k: v for k, v in os.environ.items() if k not in _AMBIENT and not k.startswith("AI_GATEWAY_")
    }
    env["CLUSTER_PYTHON"] = sys.executable
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    return {**env, **extra}


def run_cluster(args: Sequence[str], env: dict[str, str], timeout: float = 120) -> str:
    """`scripts/cluster ARGS`; its output, or an AssertionError with it when it fails."""
    done = subprocess.run(
        [str(CLUSTER), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"scripts/cluster {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@dataclass
class Cluster:
    url: str
    dir: Path
    state: dict[str, Any]
    database_url: str
    redis_prefix: str
    env: dict[str, str]

    @property
    def instances(self) -> dict[str, dict[str, Any]]:
        """name -> its state (pid, port, url, log)."""
        return {p["name"]: p for p in self.state["instances"]}

    def instance_at(self, address: str) -> str:
        """The instance's name for an nginx $upstream_addr entry (127.0.0.1:port)."""
        for name, proc in self.instances.items():
            if address.strip() == f"127.0.0.1:{proc['port']}":
                return name
        raise AssertionError(f"{address!r} is no instance of this cluster")

    def access_log(self) -> list[dict[str, Any]]:
        """nginx's access log, one dict per request (deploy/nginx.conf's `gateway` format)."""
        path = Path(self.state["access_log"])
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def usage_rows(self, request_ids: Sequence[str]) -> set[str]:
        """Which of the gateway request ids have a usage row in PostgreSQL."""

        async def query() -> set[str]:
            conn = await asyncpg.connect(self.database_url, timeout=5)
            try:
                rows = await conn.fetch(
                    "SELECT request_id FROM ai_gateway.usage_records "
                    "WHERE request_id = ANY($1::text[])",
                    list(request_ids),
                )
            finally:
                await conn.close()
            return {row["request_id"] for row in rows}

        return asyncio.run(query())

    def status(self) -> dict[str, Any]:
        done = subprocess.run(
            [str(CLUSTER), "status", "--dir", str(self.dir), "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        unavailable("Redis is not reachable at REDIS_URL")
    return client


@contextlib.contextmanager
def running_cluster(
    run_dir: Path, config: str, *, master_key: str, up_args: Sequence[str] = ()
) -> Iterator[Cluster]:
    """`scripts/cluster up` with `config` (YAML text), the master key, a fresh Redis prefix and
    a throwaway database; `down` (keeping the logs in `run_dir`) and the Redis keys deleted
    afterwards. Skips without nginx, Redis or PostgreSQL (fails under CI=true)."""
    if not Path(NGINX).is_file():
        unavailable(f"nginx is not installed ({NGINX}); scripts/test installs it")
    client = _redis_or_skip()
    prefix = f"test-cluster-{uuid.uuid4().hex[:10]}"
    config_path = run_dir / "gateway.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(config)
    try:
        with throwaway_database() as database_url:
            env = cluster_env(
                REDIS_URL=REDIS_URL,
                DATABASE_URL=database_url,
                AI_GATEWAY_REDIS_PREFIX=prefix,
                AI_GATEWAY_MASTER_KEY=master_key,
                AI_GATEWAY_LOG_LEVEL="warning",
            )
            port = free_port()
            args = ["--dir", str(run_dir), "--port", str(port), "--config", str(config_path)]
            args += ["--nginx", NGINX]
            try:
                run_cluster(["up", *args, *up_args], env)
                status = json.loads(run_cluster(["status", "--dir", str(run_dir), "--json"], env))
                yield Cluster(
                    url=status["url"],
                    dir=run_dir,
                    state=status,
                    database_url=database_url,
                    redis_prefix=prefix,
                    env=env,
                )
            finally:
                # The instances' connections must be gone before the database is dropped.
                run_cluster(["down", "--dir", str(run_dir), "--keep-logs"], env)
    finally:
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()
