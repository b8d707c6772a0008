"""`scripts/cluster` (nginx in front of two gateway instances, with the emulator) for a
scenario: started with its own Redis (a redis-server of the scenario's) and a throwaway
PostgreSQL database, read back from its state file, stopped with `down`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reliability.procs import MASTER_KEY, REPO, child_env, free_port
from reliability.scenario import Unavailable

SCRIPT = REPO / "scripts" / "cluster"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def config() -> str:
    # ${EMULATOR_URL} is set by `scripts/cluster up --emulator` for the instances.
    return """
gateway:
  log_level: warning
models:
  - name: fast
    provider: openai
    model: gpt-4o-mini
    api_base: ${EMULATOR_URL}/v1
    api_key: sk-emulator
"""


@dataclass
class Instance:
    name: str
    pid: int
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


class Cluster:
    def __init__(self, workdir: Path, redis_port: int, database: str, chunk_delay: float):
        if not SCRIPT.exists():
            raise Unavailable("scripts/cluster is not in this tree")
        if not Path(NGINX).is_file():
            raise Unavailable(f"nginx is not installed ({NGINX})")
        self.dir = workdir / "cluster"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "gateway.yaml").write_text(config())
        self._redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self._database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = child_env(
            {
                "CLUSTER_PYTHON": sys.executable,
                "AI_GATEWAY_MASTER_KEY": MASTER_KEY,
                "AI_GATEWAY_REDIS_PREFIX": f"reliability-{uuid.uuid4().hex[:8]}",
            }
        )
        self._args = [
            *("--dir", str(self.dir), "--port", str(self.port), "--emulator"),
            *("--emulator-chunk-delay", str(chunk_delay)),
            *("--redis-url", f"redis://127.0.0.1:{redis_port}/0"),
            *("--database-url", database, "--config", str(self.dir / "gateway.yaml")),
            *("--nginx", NGINX, "--ready-timeout", "120"),
        ]
        self.instances: list[Instance] = []
        self.access_log = self.dir / "nginx" / "access.log"

    def up(self) -> None:
        done = self._run("up", *self._args)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/cluster up failed:\n{done.stdout}\n{done.stderr}")
        state = json.loads((self.dir / "cluster.json").read_text())
        self.instances = [Instance(p["name"], p["pid"], p["port"]) for p in state["instances"]]

    def restart(self, name: str) -> None:
        """Start a stopped (killed) instance again, on its own data folder."""
        done = self._run(
            "restart",
            name,
            *("--dir", str(self.dir), "--ready-timeout", "120"),
            *("--redis-url", self._redis_url, "--database-url", self._database),
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/cluster restart failed:\n{done.stdout}\n{done.stderr}")

    def down(self) -> None:
        self._run("down", "--dir", str(self.dir), "--keep-logs")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def served_by(self) -> dict[str, dict[str, Any]]:
        """nginx's access log by the client's x-request-id: which instance(s), what status."""
        entries: dict[str, dict[str, Any]] = {}
        if self.access_log.exists():
            for line in self.access_log.read_text().splitlines():
                entry = json.loads(line)
                entries[entry["request_id"]] = entry
        return entries
