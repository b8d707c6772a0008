"""scripts/cluster: the two-instance topology of deploy/compose.yaml on one machine, without
Docker: nginx (Debian's package, run as the current user) in front of two `ai-gateway serve`
processes that share Redis and PostgreSQL, optionally with the provider emulator.

    scripts/cluster up [options] [-- extra `ai-gateway serve` arguments]
    scripts/cluster status [--dir D] [--json]
    scripts/cluster down [--dir D] [--keep-logs]

nginx reads deploy/nginx.conf, filled in with this machine's ports and paths: the configuration
tested here is the one shipped. Everything lives in the run directory (--dir, default
.cluster/ in the checkout): the state file (cluster.json), each process's log, nginx's config,
access log (one JSON line per request, with the instance that answered) and temporary files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cluster_procs import (
    STATE_FILE,
    ClusterError,
    Proc,
    State,
    free_port,
    http_status,
    load,
    nginx_argv,
    port_is_free,
    reachable,
    redacted,
    render,
    save,
    spawn,
    stop,
    wait_until,
)

REPO = Path(__file__).resolve().parents[1]
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
# Above nginx's upstream keepalive_timeout (60 s in deploy/nginx.conf): nginx closes idle
# connections first, so it never writes a request on one an instance is closing.
KEEP_ALIVE_S = "75"
STOP_TIMEOUT_S = 40.0  # the gateway's graceful shutdown allows its requests 30 s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="nginx in front of two gateway instances sharing Redis and PostgreSQL, on "
        "this machine (docs/deployment.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_dir = os.environ.get("CLUSTER_DIR") or str(REPO / ".cluster")
    dir_help = f"run directory: state, logs, nginx config (default $CLUSTER_DIR or {run_dir})"

    up = sub.add_parser(
        "up",
        help="start nginx, two instances (and the emulator with --emulator); wait until ready",
        description="Start two `ai-gateway serve` instances on 127.0.0.1 and nginx in front of "
        "them, and wait until both instances are ready and nginx answers. The instances inherit "
        "this environment (AI_GATEWAY_*, provider keys, QDRANT_URL, ...). Arguments after `--` "
        "go to `ai-gateway serve`.",
    )
    up.add_argument("--dir", default=run_dir, help=dir_help)
    up.add_argument("--port", type=int, default=3001, help="nginx's port (default 3001)")
    up.add_argument(
        "--instance-ports",
        help="the two instances' ports, comma-separated (default: two free ports)",
    )
    up.add_argument("--config", help="YAML config file for both instances")
    up.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or DEFAULT_REDIS,
        help=f"shared Redis (default $REDIS_URL or {DEFAULT_REDIS})",
    )
    up.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE,
        help=f"shared PostgreSQL (default $DATABASE_URL or {DEFAULT_DATABASE})",
    )
    up.add_argument(
        "--emulator",
        action="store_true",
        help="also start the provider emulator and point both instances at it (OPENAI_*, "
        "ANTHROPIC_*, GEMINI_* keys and base URLs; $EMULATOR_URL for a config file)",
    )
    up.add_argument("--emulator-port", type=int, help="with --emulator (default: a free port)")
    up.add_argument(
        "--emulator-chunk-delay", type=float, default=0.0, help="seconds between stream chunks"
    )
    up.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    up.add_argument(
        "--ready-timeout", type=float, default=60.0, help="seconds to wait (default 60)"
    )

    status = sub.add_parser("status", help="what runs, and whether it answers (exit 1: not all)")
    status.add_argument("--dir", default=run_dir, help=dir_help)
    status.add_argument("--json", action="store_true", help="the state file and each probe")

    down = sub.add_parser("down", help="stop everything (SIGTERM, then SIGKILL) and clean up")
    down.add_argument("--dir", default=run_dir, help=dir_help)
    down.add_argument("--keep-logs", action="store_true", help="keep the logs (*.log)")
    return parser


def _instance_ports(text: str | None) -> list[int]:
    if not text:
        first = free_port()
        second = free_port()
        while second == first:
            second = free_port()
        return [first, second]
    try:
        ports = [int(p) for p in text.split(",")]
    except ValueError:
        raise ClusterError(f"--instance-ports: {text!r} is not two numbers") from None
    if len(ports) != 2 or ports[0] == ports[1]:
        raise ClusterError("--instance-ports: give two different ports, e.g. 3011,3012")
    return ports


def _emulator_env(url: str) -> dict[str, str]:
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


def _check_free(ports: list[int]) -> None:
    taken = [p for p in ports if not port_is_free(p)]
    if taken:
        raise ClusterError(
            f"port {taken[0]} on 127.0.0.1 is in use (scripts/cluster status; or choose "
            "another with --port / --instance-ports / --emulator-port)"
        )


def up(args: argparse.Namespace, serve_args: list[str]) -> int:
    run_dir = Path(args.dir).resolve()
    previous = load(run_dir)
    if previous is not None:
        if any(p.alive() for p in previous.procs()):
            raise ClusterError(f"already running from {run_dir}: scripts/cluster down first")
        _clean(run_dir, previous, keep_logs=False)
    if not Path(args.nginx).is_file():
        raise ClusterError(
            f"nginx not found ({args.nginx}): apt-get install nginx, or pass --nginx PATH"
        )
    reachable(args.redis_url, 6379, "Redis", "REDIS_URL")
    reachable(args.database_url, 5432, "PostgreSQL", "DATABASE_URL")
    ports = _instance_ports(args.instance_ports)
    emulator_port = (args.emulator_port or free_port()) if args.emulator else None
    _check_free([args.port, *ports, *([emulator_port] if emulator_port else [])])
    config = str(Path(args.config).resolve()) if args.config else None
    if config and not Path(config).is_file():
        raise ClusterError(f"--config: {config} is not a file")

    run_dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = {
        **os.environ,
        "REDIS_URL": args.redis_url,
        "DATABASE_URL": args.database_url,
        "AI_GATEWAY_KEEP_ALIVE_TIMEOUT_S": os.environ.get(
            "AI_GATEWAY_KEEP_ALIVE_TIMEOUT_S", KEEP_ALIVE_S
        ),
        # nginx connects from 127.0.0.1: trust its X-Forwarded-For (uvicorn's own default too).
        "FORWARDED_ALLOW_IPS": os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    }
    # The settings' own names win over the conventional ones: make sure both say the same.
    env.pop("AI_GATEWAY_REDIS_URL", None)
    env.pop("AI_GATEWAY_DATABASE_URL", None)
    state = State(
        url=f"http://127.0.0.1:{args.port}",
        port=args.port,
        dir=str(run_dir),
        nginx=None,
        instances=[],
        emulator=None,
        redis_url=redacted(args.redis_url),
        database_url=redacted(args.database_url),
        redis_prefix=os.environ.get("AI_GATEWAY_REDIS_PREFIX") or "ai-gateway",
        access_log=str(run_dir / "nginx" / "access.log"),
    )
    try:
        if emulator_port is not None:
            state.emulator = spawn(
                "emulator",
                [
                    *(python, "-m", "ai_gateway", "emulate", "--host", "127.0.0.1"),
                    *("--port", str(emulator_port)),
                    *("--chunk-delay", str(args.emulator_chunk_delay)),
                ],
                env=env,
                log=run_dir / "emulator.log",
                cwd=run_dir,
                port=emulator_port,
            )
            save(run_dir, state)
            # The instances need only its address now; they call it at their first request.
            env.update(_emulator_env(state.emulator.url or ""))
        for index, port in enumerate(ports, start=1):
            name = f"gateway-{index}"
            home = run_dir / name
            (home / "data").mkdir(parents=True, exist_ok=True)
            argv = [python, "-m", "ai_gateway", "serve", "--host", "127.0.0.1"]
            argv += ["--port", str(port), *(["--config", config] if config else []), *serve_args]
            # Each instance has its own data directory (the SQLite fallback, embedded indexes:
            # one process per folder); shared state goes through Redis and PostgreSQL.
            instance_env = {**env, "AI_GATEWAY_DATA_DIR": str(home / "data")}
            proc = spawn(
                name, argv, env=instance_env, log=run_dir / f"{name}.log", cwd=home, port=port
            )
            state.instances.append(proc)
            save(run_dir, state)
        if state.emulator is not None:
            emulator = state.emulator
            wait_until(
                "the emulator",
                lambda: http_status(f"{emulator.url}/_emulator/stats")[0] == 200,
                [emulator],
                args.ready_timeout,
            )
        for proc in state.instances:
            wait_until(
                f"{proc.name} ready ({proc.url}/health/ready)",
                lambda p=proc: http_status(f"{p.url}/health/ready")[0] == 200,
                state.instances,
                args.ready_timeout,
            )
        state.nginx = _start_nginx(args.nginx, run_dir, args.port, state.instances)
        save(run_dir, state)
        wait_until(
            f"nginx ({state.url}/health)",
            lambda: http_status(f"{state.url}/health")[0] == 200,
            [state.nginx],
            args.ready_timeout,
        )
    except BaseException:
        stop(state.procs(), STOP_TIMEOUT_S)
        save(run_dir, state)
        raise
    _print_up(state)
    return 0


def _start_nginx(nginx: str, run_dir: Path, port: int, instances: list[Proc]) -> Proc:
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
        env=os.environ,
        log=prefix / "nginx.log",
        cwd=prefix,
        port=port,
    )


def _print_up(state: State) -> None:
    print(f"cluster up: {state.url} (nginx)")
    for proc in state.instances:
        print(f"  {proc.name}: {proc.url} (pid {proc.pid}, log {proc.log})")
    if state.emulator is not None:
        print(f"  emulator: {state.emulator.url} (pid {state.emulator.pid})")
    print(
        f"  Redis {state.redis_url} (prefix {state.redis_prefix}), PostgreSQL {state.database_url}"
    )
    print(f"  nginx access log: {state.access_log}")
    print("stop with: scripts/cluster down" + _dir_flag(state))


def _dir_flag(state: State) -> str:
    default = os.environ.get("CLUSTER_DIR") or str(REPO / ".cluster")
    return "" if Path(state.dir) == Path(default).resolve() else f" --dir {state.dir}"


def status(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir).resolve()
    state = load(run_dir)
    if state is None:
        if args.json:
            print(json.dumps({"running": False, "dir": str(run_dir)}))
        else:
            print(f"not running (no {STATE_FILE} in {run_dir})")
        return 1
    probes: dict[str, dict[str, object]] = {}
    for proc in state.procs():
        probe: dict[str, object] = {"alive": proc.alive()}
        if proc is state.nginx:
            probe["http"] = http_status(f"{state.url}/health")[0]
        elif proc is state.emulator:
            probe["http"] = http_status(f"{proc.url}/_emulator/stats")[0]
        else:
            probe["http"] = http_status(f"{proc.url}/health/ready")[0]
        probe["ok"] = bool(probe["alive"]) and probe["http"] == 200
        probes[proc.name] = probe
    running = state.nginx is not None and all(p["ok"] for p in probes.values())
    if args.json:
        print(json.dumps({"running": running, **state.to_json(), "probes": probes}, indent=2))
    else:
        print(f"{'running' if running else 'NOT all up'}: {state.url} ({run_dir})")
        for proc in state.procs():
            probe = probes[proc.name]
            where = proc.url or ""
            life = f"pid {proc.pid}" if probe["alive"] else "exited"
            print(f"  {proc.name:<10} {life:<12} {where:<24} http {probe['http']}")
    return 0 if running else 1


def down(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir).resolve()
    state = load(run_dir)
    if state is None:
        print(f"not running (no {STATE_FILE} in {run_dir})")
        return 0
    killed = stop(state.procs(), STOP_TIMEOUT_S)
    _clean(run_dir, state, keep_logs=args.keep_logs)
    note = f" (killed after {STOP_TIMEOUT_S:g}s: {', '.join(killed)})" if killed else ""
    print(f"cluster down: {len(state.procs())} processes stopped{note}")
    return 0


def _clean(run_dir: Path, state: State, *, keep_logs: bool) -> None:
    """Remove what `up` made in `run_dir` (only that: the directory may be the caller's)."""
    made = [run_dir / "nginx", *(run_dir / p.name for p in state.instances)]
    logs = [run_dir / "emulator.log", *(run_dir / f"{p.name}.log" for p in state.instances)]
    if keep_logs:
        for path in (run_dir / "nginx").glob("*"):
            if path.suffix != ".log":
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for proc in state.instances:
            shutil.rmtree(run_dir / proc.name, ignore_errors=True)
    else:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        for path in logs:
            path.unlink(missing_ok=True)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    if not keep_logs and run_dir.exists() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def main(argv: list[str]) -> int:
    serve_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, serve_args = argv[:at], argv[at + 1 :]
    args = _parser().parse_args(argv)
    if serve_args and args.command != "up":
        print("scripts/cluster: arguments after -- are for `up` only", file=sys.stderr)
        return 2
    try:
        if args.command == "up":
            return up(args, serve_args)
        if args.command == "status":
            return status(args)
        return down(args)
    except ClusterError as exc:
        print(f"scripts/cluster: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
