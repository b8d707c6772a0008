"""`ai-gateway prompts`: create, list, show, add versions to, label and render prompt templates.

The templates live in the analytics database the gateway's configuration names (`--config` and
the environment, as for `serve`). A change (a version added, a label moved) is announced to the
running gateways through Redis when the configuration names one (REDIS_URL), as the admin API
does; without Redis, running gateways see it when their cached copy expires (30 s at most).

A template file is JSON or YAML: `{"template": {...}, "variables": {...}, "description": ...,
"note": ...}` (docs/prompts.md); `template` is the request shape, `variables` its JSON Schema.

Exit status: 0 done; 1 no such template, version or label, a refused template, or the database
unavailable; 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from ai_gateway.errors import GatewayError, InvalidRequestError
from ai_gateway.prompts.catalog import PromptCatalog
from ai_gateway.prompts.records import NAME_RULE, is_name

Handler = Callable[[PromptCatalog, argparse.Namespace], Awaitable[int]]


def _name(text: str) -> str:
    if not is_name(text):
        raise argparse.ArgumentTypeError(NAME_RULE)
    return text


def _version(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError("a version number: 1, 2, 3, ...")
    return int(text)


def _document(text: str) -> dict[str, Any]:
    """A JSON or YAML object: the text itself, or `@FILE` / a path to a file holding it."""
    path = Path(text[1:] if text.startswith("@") else text)
    source = text
    if text.startswith("@") or (not text.lstrip().startswith("{") and path.is_file()):
        try:
            source = path.read_text()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None
    try:
        value = yaml.safe_load(source)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError("not valid JSON or YAML") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON or YAML object")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `prompts` and its actions on the `ai-gateway` command's subparsers."""
    prompts = sub.add_parser(
        "prompts",
        help="manage prompt templates (create, list, show, add-version, label, render)",
        description="Versioned prompt templates, stored in the analytics database: the SQLite "
        "file <data_dir>/analytics.db ($AI_GATEWAY_DATA_DIR), or PostgreSQL when DATABASE_URL "
        "is set. Versions never change; labels (production, staging, ...) point at versions.",
        epilog="Exit status: 0 done; 1 no such template, version or label, a refused template, "
        "or the database unavailable; 2 a usage or configuration error.",
    )
    actions = prompts.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file, as for serve (default: $AI_GATEWAY_CONFIG, else environment only)",
    )
    file_help = (
        "the template: a JSON or YAML file (or @FILE, or the JSON itself) holding template, "
        "variables (a JSON Schema), and optionally description and note"
    )
    labels_help = "point this label at the new version (repeatable)"

    create = actions.add_parser("create", parents=[common], help="create a template (version 1)")
    create.add_argument("id", type=_name, metavar="ID", help="the template's id")
    create.add_argument("--file", type=_document, required=True, metavar="FILE", help=file_help)
    create.add_argument("--label", action="append", type=_name, default=[], help=labels_help)

    actions.add_parser("list", parents=[common], help="list templates with their labels")

    show = actions.add_parser("show", parents=[common], help="show a template and a version")
    show.add_argument("id", type=_name, metavar="ID")
    show.add_argument("--version", type=_version, help="this version (default: the newest)")

    add = actions.add_parser("add-version", parents=[common], help="add a version")
    add.add_argument("id", type=_name, metavar="ID")
    add.add_argument("--file", type=_document, required=True, metavar="FILE", help=file_help)
    add.add_argument("--label", action="append", type=_name, default=[], help=labels_help)

    label = actions.add_parser("label", parents=[common], help="point a label at a version")
    label.add_argument("id", type=_name, metavar="ID")
    label.add_argument("label", type=_name, metavar="LABEL")
    label.add_argument("version", type=_version, metavar="VERSION")

    render = actions.add_parser(
        "render", parents=[common], help="print the request a version renders (no model called)"
    )
    render.add_argument("id", type=_name, metavar="ID")
    choice = render.add_mutually_exclusive_group()
    choice.add_argument("--version", type=_version)
    choice.add_argument("--label", type=_name)
    render.add_argument(
        "--vars",
        type=_document,
        default={},
        metavar="JSON",
        help="the variables: a JSON or YAML object, or @FILE",
    )


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _parts(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    template = doc.get("template")
    if not isinstance(template, dict):
        raise InvalidRequestError("the file needs 'template': an object (the request shape)")
    variables = doc.get("variables", {"type": "object"})
    if not isinstance(variables, dict):
        raise InvalidRequestError("'variables' must be an object (a JSON Schema)")
    return template, variables, doc.get("description"), doc.get("note")


async def _create(catalog: PromptCatalog, args: argparse.Namespace) -> int:
    template, variables, description, note = _parts(args.file)
    record = await catalog.create(args.id, description, template, variables, note)
    for label in args.label:
        record = await catalog.set_label(args.id, label, 1)
    _print(record.view())
    return 0


async def _list(catalog: PromptCatalog, args: argparse.Namespace) -> int:
    _print([record.view() for record in await catalog.list()])
    return 0


async def _show(catalog: PromptCatalog, args: argparse.Namespace) -> int:
    record = await catalog.current(args.id)
    version = await catalog.version(args.id, args.version or record.latest_version)
    _print({**record.view(), "version": version.view()})
    return 0


async def _add(catalog: PromptCatalog, args: argparse.Namespace) -> int:
    template, variables, _, note = _parts(args.file)
    version = await catalog.add_version(args.id, template, variables, note)
    for label in args.label:
        await catalog.set_label(args.id, label, version.version)
    _print(version.view())
    return 0


async def _label(catalog: PromptCatalog, args: argparse.Namespace) -> int:
    _print((await catalog.set_label(args.id, args.label, args.version)).view())
    return 0


async def _render(catalog: PromptCatalog, args: argparse.Namespace) -> int:
    compiled = await catalog.resolve(args.id, args.version, args.label)
    messages = compiled.render(args.vars)
    _print({"id": args.id, "version": compiled.version.version,
            "request": {**compiled.fields, "messages": messages}})  # fmt: skip
    return 0


ACTIONS: dict[str, Handler] = {
    "create": _create,
    "list": _list,
    "show": _show,
    "add-version": _add,
    "label": _label,
    "render": _render,
}


async def _dispatch(args: argparse.Namespace, config: Any) -> int:
    from ai_gateway.prompts.invalidation import RedisInvalidation
    from ai_gateway.stores.factory import open_prompt_store
    from ai_gateway.stores.redis import create_redis

    store = open_prompt_store(config.gateway)
    settings = config.gateway
    client = create_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
    announce = (
        RedisInvalidation(client, f"{settings.redis_prefix}:prompts").publish
        if client is not None
        else None
    )
    try:
        await store.start()
        return await ACTIONS[args.prompts_command](PromptCatalog(store, notify=announce), args)
    finally:
        await store.aclose()
        if client is not None:
            await client.aclose()


def run(args: argparse.Namespace) -> int:
    """Run the `prompts` action `args` names; returns the exit status."""
    from ai_gateway.observability.logging import configure_logging, secrets_of
    from ai_gateway.settings import ConfigError, load_config
    from ai_gateway.stores.analytics import StoreUnavailableError

    try:
        config = load_config(args.config)
        configure_logging("warning", config.gateway.log_format, secrets=secrets_of(config))
    except ConfigError as exc:
        return _fail(str(exc), 2)
    try:
        return asyncio.run(_dispatch(args, config))
    except StoreUnavailableError as exc:
        return _fail(f"the prompt store is unavailable: {exc}", 1)
    except GatewayError as exc:
        where = f" ({exc.param})" if exc.param else ""
        return _fail(f"{exc.message}{where}", 1)


def _fail(message: str, status: int) -> int:
    print(f"ai-gateway prompts: error: {message}", file=sys.stderr)
    return status
