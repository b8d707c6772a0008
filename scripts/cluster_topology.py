"""The parts of scripts/cluster's topology: the instances' environment, the provider and Qdrant
emulators, an instance, nginx with deploy/nginx.conf filled in, and cleaning the run
directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cluster_procs import (
    STATE_FILE,
    ClusterError,
    Proc,
    State,
    http_status,
    nginx_argv,
    render,
    spawn,
    wait_until,
)

REPO = Path(__file__).resolve().parents[1]
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
# Above nginx's upstream keepalive_timeout (60 s in deploy/nginx.conf): nginx closes idle
# connections first, so it never writes a request on one an instance is closing.
KEEP_ALIVE_S = "75"
QDRANT_DIR = "qdrant"  # the Qdrant emulator's collections, in the run directory
RAG_FILES_DIR = "rag-files"  # RAG's file bytes, shared by the instances


def redis_url(flag: str | None) -> str:
    """--redis-url, else the gateway's own variable, else the conventional one."""
    env = os.environ
    return flag or env.get("AI_GATEWAY_REDIS_URL") or env.get("REDIS_URL") or DEFAULT_REDIS


def database_url(flag: str | None) -> str:
    env = os.environ
    return flag or env.get("AI_GATEWAY_DATABASE_URL") or env.get("DATABASE_URL") or DEFAULT_DATABASE


def qdrant_url(flag: str | None) -> str | None:
    """--qdrant-url, else $QDRANT_URL: a Qdrant server to use instead of the emulator."""
    return flag or os.environ.get("QDRANT_URL") or None


def base_env(redis: str, database: str, qdrant: str) -> dict[str, str]:
    """What every process runs with: this environment, the shared stores (Redis, PostgreSQL,
    Qdrant: never saved in the state file, since their URLs may hold a password), and what
    nginx in front needs of an instance."""
    env = {
        **os.environ,
        "REDIS_URL": redis,
        "DATABASE_URL": database,
        "QDRANT_URL": qdrant,
        "AI_GATEWAY_KEEP_ALIVE_TIMEOUT_S": os.environ.get(
            "AI_GATEWAY_KEEP_ALIVE_TIMEOUT_S", KEEP_ALIVE_S
        ),
        # nginx connects from 127.0.0.1: trust its X-Forwarded-For (uvicorn's own default too).
        "FORWARDED_ALLOW_IPS": os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    }
    # The settings' own names would win over the conventional ones set above.
    env.pop("AI_GATEWAY_REDIS_URL", None)
    env.pop("AI_GATEWAY_DATABASE_URL", None)
    return env


def emulator_env(url: str) -> dict[str, str]:
    """Every provider pointed at the emulator (it accepts any non-empty key); demo mode is
    then off, like with any provider key."""
    return {
        "EMULATOR_URL": url,
        "OPENAI_API_KEY": "sk-emulator",
        "OPENAI_BASE_URL": f"{url}/v1",
        "ANTHROPIC_API_KEY": "sk-emulator",
        "ANTHROPIC_BASE_URL": url,
        "GEMINI_API_KEY": "sk-emulator",
        "GEMINI_BASE_URL": url,
    }


def spawn_emulator(run_dir: Path, port: int, chunk_delay: float, env: Mapping[str, str]) -> Proc:
    argv = [sys.executable, "-m", "ai_gateway", "emulate", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--chunk-delay", str(chunk_delay)]
    return spawn(
        "emulator", argv, base_env=env, env={}, log=run_dir / "emulator.log", cwd=run_dir, port=port
    )


def spawn_qdrant(run_dir: Path, port: int, env: Mapping[str, str]) -> Proc:
    """The Qdrant server emulator (`ai-gateway emulate --qdrant`), its collections under the
    run directory. It asks for $QDRANT_API_KEY when that is set, which the instances send."""
    argv = [sys.executable, "-m", "ai_gateway", "emulate", "--qdrant", "--host", "127.0.0.1"]
    argv += ["--qdrant-port", str(port), "--qdrant-path", str(run_dir / QDRANT_DIR)]
    return spawn(
        "qdrant", argv, base_env=env, env={}, log=run_dir / "qdrant.log", cwd=run_dir, port=port
    )


def spawn_instance(
    run_dir: Path,
    name: str,
    port: int,
    *,
    config: str | None,
    serve_args: Sequence[str],
    base: Mapping[str, str],
    extra_env: Mapping[str, str],
) -> Proc:
    home = run_dir / name
    (home / "data").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ai_gateway", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), *(["--config", config] if config else []), *serve_args]
    # Each instance has its own data directory (the SQLite fallback, embedded indexes: one
    # process per folder); shared state goes through Redis, PostgreSQL and Qdrant, and RAG's
    # file bytes through one folder (compose's shared volume), since the instance that indexes
    # a file may not be the one that received it.
    env = {
        **extra_env,
        "AI_GATEWAY_DATA_DIR": str(home / "data"),
        "AI_GATEWAY_RAG_FILES_DIR": str(run_dir / RAG_FILES_DIR),
    }
    log = run_dir / f"{name}.log"
    return spawn(name, argv, base_env=base, env=env, log=log, cwd=home, port=port)


def respawn(proc: Proc, base: Mapping[str, str]) -> Proc:
    """`proc` started again as it was first started."""
    return spawn(
        proc.name,
        proc.argv,
        base_env=base,
        env=proc.env,
        log=Path(proc.log),
        cwd=Path(proc.cwd),
        port=proc.port,
    )


def wait_ready(instances: Sequence[Proc], timeout: float) -> None:
    for proc in instances:
        wait_until(
            f"{proc.name} ready ({proc.url}/health/ready)",
            lambda p=proc: http_status(f"{p.url}/health/ready")[0] == 200,
            instances,
            timeout,
        )


def start_nginx(nginx: str, run_dir: Path, port: int, instances: Sequence[Proc]) -> Proc:
    """nginx, with deploy/nginx.conf filled in for this machine, checked (`nginx -t`) first."""
    prefix = run_dir / "nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = render(
        NGINX_TEMPLATE.read_text(),
        {
            "NGINX_LISTEN": f"127.0.0.1:{port}",
            "NGINX_WORKER_PROCESSES": "1",  # one machine, already busy with everything else
            "NGINX_RUN_DIR": str(prefix / "tmp"),
            "NGINX_ACCESS_LOG": str(prefix / "access.log"),
            "NGINX_ERROR_LOG": str(prefix / "error.log"),
            "GATEWAY_1": f"127.0.0.1:{instances[0].port}",
            "GATEWAY_2": f"127.0.0.1:{instances[1].port}",
        },
    )
    (prefix / "nginx.conf").write_text(conf)
    argv = nginx_argv(nginx, prefix)
    check = subprocess.run(  # noqa: S603 (our own argv)
        [*argv, "-t", "-q"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise ClusterError(f"nginx -t failed on {prefix / 'nginx.conf'}:\n{check.stderr}")
    return spawn(
        "nginx",
        [*argv, "-g", "daemon off;"],
        base_env=os.environ,
        env={},
        log=prefix / "nginx.log",
        cwd=prefix,
        port=port,
    )


def clean(run_dir: Path, state: State, *, keep_logs: bool) -> None:
    """Remove what `up` made in `run_dir` (only that: the directory may be the caller's)."""
    for proc in state.instances:
        shutil.rmtree(run_dir / proc.name, ignore_errors=True)
    for shared in (QDRANT_DIR, RAG_FILES_DIR):
        shutil.rmtree(run_dir / shared, ignore_errors=True)
    nginx_dir = run_dir / "nginx"
    if keep_logs:
        for path in nginx_dir.glob("*"):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.suffix != ".log":
                path.unlink()
    else:
        shutil.rmtree(nginx_dir, ignore_errors=True)
        (run_dir / "emulator.log").unlink(missing_ok=True)
        (run_dir / "qdrant.log").unlink(missing_ok=True)
        for proc in state.instances:
            (run_dir / f"{proc.name}.log").unlink(missing_ok=True)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    if not keep_logs and run_dir.exists() and not any(run_dir.iterdir()):
        run_dir.rmdir()
