"""The `ai-gateway` command: serve, emulate, check-config, migrate, keys, prompts."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ai_gateway import __version__, cli_keys, cli_migrate, cli_prompts
from ai_gateway.cli_banner import start_banner
from ai_gateway.demo import UPSTREAM_ENV, DemoUpstream, wants_demo, with_demo
from ai_gateway.settings import Config, ConfigError, load_config

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ai-gateway",
        description="DevMentor AI Gateway: an OpenAI-compatible gateway for OpenAI, Anthropic "
        "and Gemini.",
    )
    parser.add_argument("--version", action="version", version=f"ai-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. With no provider key, provider base URL or config file, "
        "it starts in demo mode: a built-in emulator serves the labelled models demo-gpt, "
        "demo-claude, demo-gemini and demo-embedding (AI_GATEWAY_DEMO=false turns it off).",
    )
    serve.add_argument(
        "--config", help="YAML config file (default: $AI_GATEWAY_CONFIG, else environment only)"
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; $AI_GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port (default 3001; $AI_GATEWAY_PORT)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default 1; $AI_GATEWAY_WORKERS)"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="allow binding to a non-loopback address without authentication "
        "(no AI_GATEWAY_MASTER_KEY and no security.jwt)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", choices=["json", "console"])

    emulate = sub.add_parser(
        "emulate",
        help="run the provider emulator (OpenAI, Anthropic, Gemini wire formats), or with "
        "--services the DevMentor Memory, Project and Learning service emulators, or with "
        "--qdrant a Qdrant server emulator",
        description="Run the provider emulator on --port. With --services, run instead the "
        "emulators of the DevMentor Memory, Project and Learning services (docs/integrations.md) "
        "on --memory-port, --project-port and --learning-port; their faults are set through "
        "each one's /_emulator/faults. With --qdrant, run instead an emulator of a Qdrant "
        "server's REST API (the part the gateway's Qdrant client uses, answered by "
        "qdrant-client's local mode) on --qdrant-port, for tests and one-machine clusters, not "
        "production (docs/rag.md).",
    )
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=8089)
    emulate.add_argument(
        "--services",
        action="store_true",
        help="run the Memory, Project and Learning service emulators instead",
    )
    emulate.add_argument(
        "--qdrant", action="store_true", help="run the Qdrant server emulator instead"
    )
    emulate.add_argument("--qdrant-port", type=int, default=6333, help="with --qdrant")
    emulate.add_argument(
        "--qdrant-path",
        help="with --qdrant: keep the collections in this folder (locked to this process; "
        "default: in memory)",
    )
    emulate.add_argument(
        "--qdrant-api-key",
        action="append",
        default=[],
        help="with --qdrant: accept only this key, as `api-key` or a bearer token (repeatable; "
        "default: none needed); also $QDRANT_API_KEY",
    )
    emulate.add_argument("--memory-port", type=int, default=3003, help="with --services")
    emulate.add_argument("--project-port", type=int, default=3004, help="with --services")
    emulate.add_argument("--learning-port", type=int, default=3005, help="with --services")
    emulate.add_argument(
        "--service-token",
        action="append",
        default=[],
        help="with --services: accept only this bearer token (repeatable; default: none needed)",
    )
    emulate.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    emulate.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between stream chunks"
    )
    emulate.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="accept only this key (repeatable; default: any non-empty key)",
    )

    check = sub.add_parser("check-config", help="validate configuration and exit")
    check.add_argument("--config", help="YAML config file")
    cli_migrate.add_parser(sub)
    cli_keys.add_parser(sub)
    cli_prompts.add_parser(sub)
    return parser


def tune_gc() -> None:
    """Collect once, move everything built at start-up out of the collector's sight, and collect
    the young generation less often. A gateway allocates many short-lived objects per request;
    with the default threshold (700) the collector runs every few requests and rescans the app's
    long-lived objects, which cost about a fifth of the throughput under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _fail(message: str) -> int:
    print(f"ai-gateway: error: {message}", file=sys.stderr)
    return 2


@contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the worker processes, set before they start (their
    prometheus_client then keeps its values in files there, and `/metrics` adds up every
    worker's), and removed once they have stopped."""
    name = "PROMETHEUS_MULTIPROC_DIR"
    path = tempfile.mkdtemp(prefix="ai-gateway-metrics-")
    previous = os.environ.get(name)
    os.environ[name] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
        shutil.rmtree(path, ignore_errors=True)


def _build(config: Config) -> Any:
    from ai_gateway.app import create_app

    return create_app(config)


def app_from_env() -> Any:
    """uvicorn factory for --workers > 1: each worker reads the same config again."""
    from ai_gateway.observability.logging import configure_logging, secrets_of

    config = load_config(os.environ.get("AI_GATEWAY_CONFIG") or None)
    demo_url = os.environ.get(UPSTREAM_ENV)
    if demo_url:  # the serve command started the demo emulator for its workers
        config = with_demo(config, demo_url)
    configure_logging(
        config.gateway.log_level, config.gateway.log_format, secrets=secrets_of(config)
    )
    app = _build(config)
    tune_gc()
    return app


def _serve(args: argparse.Namespace) -> int:
    from ai_gateway.observability.logging import configure_logging, secrets_of

    overrides = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "insecure_no_auth": args.insecure_no_auth,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    demo: DemoUpstream | None = None
    try:
        config = load_config(args.config, overrides)
        settings = config.gateway
        configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(config))
        if wants_demo(config):
            demo = DemoUpstream()
            config = with_demo(config, demo.start())
        app = _build(config)  # validates everything, also when workers build their own
    except ConfigError as exc:
        return _fail(str(exc))
    if not config.gateway.database_migrate_at_start:
        problem = cli_migrate.schema_problem(config)
        if problem is not None:
            if demo is not None:
                demo.stop()
            return _fail(problem)
    try:
        return _run(args, config, app, overrides)
    finally:
        if demo is not None:
            demo.stop()


def _run(args: argparse.Namespace, config: Config, app: Any, overrides: dict[str, Any]) -> int:
    import uvicorn

    from ai_gateway.app_security import auth_enabled
    from ai_gateway.observability.logging import get_logger
    from ai_gateway.serving import run_server, uvicorn_options

    settings = config.gateway
    log = get_logger("ai_gateway.cli")
    if not auth_enabled(config):
        if not is_loopback(settings.host) and not settings.insecure_no_auth:
            return _fail(
                f"refusing to listen on {settings.host} without authentication: set "
                "AI_GATEWAY_MASTER_KEY (or security.jwt), bind to 127.0.0.1, or pass "
                "--insecure-no-auth"
            )
        log.warning(
            "authentication_disabled",
            detail="neither AI_GATEWAY_MASTER_KEY nor security.jwt is set: anyone who can reach "
            "this address can use the gateway and its provider keys",
        )
    table = app.state.gateway.deployments
    log.info(
        "starting",
        version=__version__,
        url=f"http://{settings.host}:{settings.port}",
        workers=settings.workers,
        config=config.source,
        demo=config.demo_upstream is not None,
        models={
            name: [f"{d.provider}/{d.model}" for d in deps] for name, deps in table.groups.items()
        },
        direct_providers=list(table.direct_providers),
        auth=[
            name
            for name, on in (
                ("master key", settings.master_key is not None),
                ("virtual keys", auth_enabled(config)),
                ("jwt", config.security.jwt is not None),
            )
            if on
        ]
        or "none",
    )
    if sys.stderr.isatty():
        banner = start_banner(config, list(table.groups), list(table.direct_providers))
        print(banner, file=sys.stderr)
    common = uvicorn_options(config)
    if settings.workers == 1:
        tune_gc()
        run_server(uvicorn.Config(app, **common))
    else:
        # Each worker process loads the configuration again: hand it the same file and flags.
        if args.config:
            os.environ["AI_GATEWAY_CONFIG"] = os.path.abspath(args.config)
        if config.demo_upstream:
            os.environ[UPSTREAM_ENV] = config.demo_upstream
        for name, value in overrides.items():
            if value is not None:
                os.environ[f"AI_GATEWAY_{name.upper()}"] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        with multiprocess_metrics():
            uvicorn.run(
                "ai_gateway.cli:app_from_env", factory=True, workers=settings.workers, **common
            )
    return 0


def _emulate_services(args: argparse.Namespace) -> int:
    from ai_gateway.emulator.services import ServiceFaults, ServiceName, ServiceSettings, run

    settings = ServiceSettings(
        faults=ServiceFaults(latency_s=args.latency), tokens=frozenset(args.service_token)
    )
    ports: dict[ServiceName, int] = {
        "memory": args.memory_port,
        "project": args.project_port,
        "learning": args.learning_port,
    }
    run(settings, args.host, ports)
    return 0


def _emulate_qdrant(args: argparse.Namespace) -> int:
    from ai_gateway.emulator.qdrant import QdrantEmulatorSettings, run

    if args.services:
        return _fail("emulate: --qdrant and --services run different emulators; pick one")
    keys = set(args.qdrant_api_key)
    if not keys and os.environ.get("QDRANT_API_KEY"):
        keys.add(os.environ["QDRANT_API_KEY"])
    try:
        settings = QdrantEmulatorSettings(path=args.qdrant_path, api_keys=frozenset(keys))
        run(settings, args.host, args.qdrant_port)
    except RuntimeError as exc:  # the folder is held by another process
        return _fail(str(exc))
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from ai_gateway.emulator.app import EmulatorSettings, run

    if args.qdrant:
        return _emulate_qdrant(args)
    if args.services:
        return _emulate_services(args)

    settings = EmulatorSettings(
        latency_s=args.latency,
        chunk_delay_s=args.chunk_delay,
        api_keys=frozenset(args.api_key),
    )
    run(settings, args.host, args.port)
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        _build(config)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"configuration OK ({config.source}): {len(config.models)} model names")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "emulate":
        return _emulate(args)
    if args.command == "keys":
        return cli_keys.run(args)
    if args.command == "prompts":
        return cli_prompts.run(args)
    if args.command == "migrate":
        return cli_migrate.run(args)
    return _check(args)


if __name__ == "__main__":
    raise SystemExit(main())
