"""scripts/cluster: the two-instance topology of deploy/compose.yaml on one machine, without
Docker: nginx (Debian's package, run as the current user) in front of two `ai-gateway serve`
processes that share Redis, PostgreSQL, a Qdrant server (the project's emulator of one, unless
a server is given) and a folder of RAG file bytes, optionally with the provider emulator.

    scripts/cluster up [options] [-- extra `ai-gateway serve` arguments]
    scripts/cluster status [--dir D] [--json]
    scripts/cluster restart gateway-1|gateway-2 [--kill] [--dir D]
    scripts/cluster down [--dir D] [--keep-logs]

nginx reads deploy/nginx.conf, filled in with this machine's ports and paths: the configuration
tested here is the one shipped. Everything lives in the run directory (--dir, default
.cluster/ in the checkout): the state file (cluster.json), each process's log, nginx's config,
access log (one JSON line per request, with the instance that answered) and temporary files.
docs/deployment.md describes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from cluster_procs import (
    STATE_FILE,
    ClusterError,
    State,
    free_port,
    http_status,
    load,
    port_is_free,
    reachable,
    redacted,
    save,
    stop,
    wait_until,
)
from cluster_topology import (
    DEFAULT_DATABASE,
    DEFAULT_REDIS,
    REPO,
    base_env,
    clean,
    database_url,
    emulator_env,
    qdrant_url,
    redis_url,
    respawn,
    spawn_emulator,
    spawn_instance,
    spawn_qdrant,
    start_nginx,
    wait_ready,
)

STOP_TIMEOUT_S = 40.0  # the gateway's graceful shutdown allows its requests 30 s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="nginx in front of two gateway instances sharing Redis, PostgreSQL, Qdrant "
        "and RAG's file bytes, on this machine (docs/deployment.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_dir = os.environ.get("CLUSTER_DIR") or str(REPO / ".cluster")
    dir_help = "run directory: state, logs, nginx config (default $CLUSTER_DIR, else .cluster/)"
    stores_help = {
        "redis": f"shared Redis (default $AI_GATEWAY_REDIS_URL, $REDIS_URL, {DEFAULT_REDIS})",
        "database": "shared PostgreSQL (default $AI_GATEWAY_DATABASE_URL, $DATABASE_URL, "
        f"{DEFAULT_DATABASE})",
        "qdrant": "a Qdrant server for RAG (default $QDRANT_URL; without either, the Qdrant "
        "emulator that `up` starts)",
    }

    up = sub.add_parser(
        "up",
        help="start nginx, two instances, the Qdrant emulator (unless --qdrant-url) and the "
        "provider emulator (with --emulator); wait until ready",
        description="Start two `ai-gateway serve` instances on 127.0.0.1 and nginx in front of "
        "them, and wait until both instances are ready and nginx answers. Without --qdrant-url "
        "or $QDRANT_URL, also start the Qdrant server emulator (`ai-gateway emulate --qdrant`, "
        "collections under the run directory; for tests and one machine, not production). Both "
        "instances get QDRANT_URL and one folder for RAG's file bytes in the run directory "
        "(AI_GATEWAY_RAG_FILES_DIR), so that RAG works whichever instance a request reaches. "
        "The instances inherit this environment (AI_GATEWAY_*, provider keys, QDRANT_API_KEY, "
        "...). Arguments after `--` go to `ai-gateway serve`.",
    )
    up.add_argument("--dir", default=run_dir, help=dir_help)
    up.add_argument("--port", type=int, default=3001, help="nginx's port (default 3001)")
    up.add_argument(
        "--instance-ports", help="the instances' ports, comma-separated (default: free ports)"
    )
    up.add_argument("--config", help="YAML config file for both instances")
    up.add_argument("--redis-url", help=stores_help["redis"])
    up.add_argument("--database-url", help=stores_help["database"])
    up.add_argument("--qdrant-url", help=stores_help["qdrant"])
    up.add_argument(
        "--qdrant-port", type=int, help="the Qdrant emulator's port (default: a free port)"
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
    up.add_argument(
        "--nginx",
        default=shutil.which("nginx") or "/usr/sbin/nginx",
        help="the nginx binary (default: nginx on the PATH, else /usr/sbin/nginx)",
    )
    up.add_argument("--ready-timeout", type=float, default=60.0, help="seconds (default 60)")

    status = sub.add_parser("status", help="what runs, and whether it answers (exit 1: not all)")
    status.add_argument("--dir", default=run_dir, help=dir_help)
    status.add_argument("--json", action="store_true", help="the state file and each probe")

    restart = sub.add_parser(
        "restart",
        help="stop one instance (SIGTERM, or SIGKILL with --kill) and start it again",
        description="Stop one instance, unless it has already exited, start it again as `up` "
        "did (same port, arguments and environment; Redis, PostgreSQL and a Qdrant server as "
        "given now, which must be the ones `up` used), and wait until it is ready.",
    )
    restart.add_argument("name", choices=["gateway-1", "gateway-2"])
    restart.add_argument("--dir", default=run_dir, help=dir_help)
    restart.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    restart.add_argument("--redis-url", help=stores_help["redis"])
    restart.add_argument("--database-url", help=stores_help["database"])
    restart.add_argument("--qdrant-url", help=stores_help["qdrant"])
    restart.add_argument("--ready-timeout", type=float, default=60.0, help="seconds (default 60)")

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
        clean(run_dir, previous, keep_logs=False)
    if not Path(args.nginx).is_file():
        raise ClusterError(
            f"nginx not found ({args.nginx}): apt-get install nginx, or pass --nginx PATH"
        )
    redis, database = redis_url(args.redis_url), database_url(args.database_url)
    reachable(redis, 6379, "Redis", "REDIS_URL")
    reachable(database, 5432, "PostgreSQL", "DATABASE_URL")
    ports = _instance_ports(args.instance_ports)
    emulator_port = (args.emulator_port or free_port()) if args.emulator else None
    qdrant = qdrant_url(args.qdrant_url)
    if qdrant:
        reachable(qdrant, 6333, "Qdrant", "QDRANT_URL")
    qdrant_port = None if qdrant else (args.qdrant_port or free_port())
    extra_ports = [p for p in (emulator_port, qdrant_port) if p is not None]
    _check_free([args.port, *ports, *extra_ports])
    if qdrant_port is not None:
        qdrant = f"http://127.0.0.1:{qdrant_port}"
    assert qdrant is not None
    config = str(Path(args.config).resolve()) if args.config else None
    if config and not Path(config).is_file():
        raise ClusterError(f"--config: {config} is not a file")

    run_dir.mkdir(parents=True, exist_ok=True)
    base = base_env(redis, database, qdrant)
    state = State(
        url=f"http://127.0.0.1:{args.port}",
        port=args.port,
        dir=str(run_dir),
        nginx=None,
        instances=[],
        emulator=None,
        redis_url=redacted(redis),
        database_url=redacted(database),
        redis_prefix=os.environ.get("AI_GATEWAY_REDIS_PREFIX") or "ai-gateway",
        access_log=str(run_dir / "nginx" / "access.log"),
        qdrant_url=redacted(qdrant),
    )
    extra: dict[str, str] = {}
    try:
        if qdrant_port is not None:
            state.qdrant = spawn_qdrant(run_dir, qdrant_port, base)
            save(run_dir, state)
        if emulator_port is not None:
            state.emulator = spawn_emulator(run_dir, emulator_port, args.emulator_chunk_delay, base)
            save(run_dir, state)
            # The instances need only its address now; they call it at their first request.
            extra = emulator_env(state.emulator.url or "")
        for index, port in enumerate(ports, start=1):
            proc = spawn_instance(
                run_dir,
                f"gateway-{index}",
                port,
                config=config,
                serve_args=serve_args,
                base=base,
                extra_env=extra,
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
        if state.qdrant is not None:
            emulated = state.qdrant
            wait_until(
                "the Qdrant emulator",
                lambda: http_status(f"{emulated.url}/readyz")[0] == 200,
                [emulated],
                args.ready_timeout,
            )
        wait_ready(state.instances, args.ready_timeout)
        state.nginx = start_nginx(args.nginx, run_dir, args.port, state.instances)
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


def _print_up(state: State) -> None:
    print(f"cluster up: {state.url} (nginx)")
    for proc in state.instances:
        print(f"  {proc.name}: {proc.url} (pid {proc.pid}, log {proc.log})")
    if state.emulator is not None:
        print(f"  emulator: {state.emulator.url} (pid {state.emulator.pid})")
    if state.qdrant is not None:
        print(f"  Qdrant emulator: {state.qdrant.url} (pid {state.qdrant.pid}; not for production)")
    else:
        print(f"  Qdrant server: {state.qdrant_url}")
    print(
        f"  Redis {state.redis_url} (prefix {state.redis_prefix}), PostgreSQL {state.database_url}"
    )
    print(f"  nginx access log: {state.access_log}")
    print("stop with: scripts/cluster down" + _dir_flag(state))


def _dir_flag(state: State) -> str:
    default = os.environ.get("CLUSTER_DIR") or str(REPO / ".cluster")
    return "" if Path(state.dir) == Path(default).resolve() else f" --dir {state.dir}"


def _running(run_dir: Path) -> State:
    state = load(run_dir)
    if state is None:
        raise ClusterError(f"not running (no {STATE_FILE} in {run_dir})")
    return state


def restart(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir).resolve()
    state = _running(run_dir)
    redis, database = redis_url(args.redis_url), database_url(args.database_url)
    if (redacted(redis), redacted(database)) != (state.redis_url, state.database_url):
        raise ClusterError(
            "Redis or PostgreSQL is not the one `up` used: give restart the same REDIS_URL and "
            "DATABASE_URL (or --redis-url, --database-url)"
        )
    qdrant = state.qdrant.url if state.qdrant is not None else qdrant_url(args.qdrant_url)
    if qdrant is None or redacted(qdrant) != state.qdrant_url:
        raise ClusterError(
            "the Qdrant server is not the one `up` used: give restart the same QDRANT_URL "
            "(or --qdrant-url)"
        )
    index = [p.name for p in state.instances].index(args.name)
    old = state.instances[index]
    if old.alive() and args.kill:
        old.signal(signal.SIGKILL)
        wait_until(f"{old.name} to exit", lambda: not old.alive(), [], 10)
    elif old.alive():
        stop([old], STOP_TIMEOUT_S)
        wait_until(f"{old.name} to exit", lambda: not old.alive(), [], 10)
    new = respawn(old, base_env(redis, database, qdrant))
    state.instances[index] = new
    save(run_dir, state)
    wait_ready([new], args.ready_timeout)
    print(f"{new.name} restarted: {new.url} (pid {new.pid})")
    return 0


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
        elif proc is state.qdrant:
            probe["http"] = http_status(f"{proc.url}/readyz")[0]
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
            life = f"pid {proc.pid}" if probe["alive"] else "exited"
            print(f"  {proc.name:<10} {life:<12} {proc.url or '':<24} http {probe['http']}")
    return 0 if running else 1


def down(args: argparse.Namespace) -> int:
    run_dir = Path(args.dir).resolve()
    state = load(run_dir)
    if state is None:
        print(f"not running (no {STATE_FILE} in {run_dir})")
        return 0
    killed = stop(state.procs(), STOP_TIMEOUT_S)
    clean(run_dir, state, keep_logs=args.keep_logs)
    note = f" (killed after {STOP_TIMEOUT_S:g}s: {', '.join(killed)})" if killed else ""
    print(f"cluster down: {len(state.procs())} processes stopped{note}")
    return 0


def main(argv: list[str]) -> int:
    serve_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, serve_args = argv[:at], argv[at + 1 :]
    args = _parser().parse_args(argv)
    if serve_args and args.command != "up":
        print("scripts/cluster: arguments after -- are for `up` only", file=sys.stderr)
        return 2
    commands = {"status": status, "restart": restart, "down": down}
    try:
        if args.command == "up":
            return up(args, serve_args)
        return commands[args.command](args)
    except ClusterError as exc:
        print(f"scripts/cluster: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
