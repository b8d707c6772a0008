"""`ai-gateway keys`: create, list, show, revoke and rotate virtual API keys.

The keys live in the analytics database the gateway's configuration names (`--config` and the
environment, as for `serve`). A key's secret is printed once, by `create` and `rotate`; nothing
else ever prints it. `create`, `revoke` and `rotate` write an audit record (actor "cli").

Exit status: 0 done; 1 no such key, a refused change, or the database unavailable; 2 a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ai_gateway.security.audit import AuditRecord, Outcome
from ai_gateway.security.keys import (
    BUDGET_PERIODS,
    ApiKey,
    is_key_id,
    issue_key,
    issued_view,
    new_credentials,
    parse_key,
)
from ai_gateway.stores.security import KeyExistsError, KeyRevokedError, SecurityStore

Handler = Callable[[SecurityStore, argparse.Namespace], Awaitable[int]]
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ONCE = (
    "This is the only time the key is shown: store it now. It cannot be retrieved later "
    "(rotate the key to get a new one)."
)


# --- argument types (ArgumentTypeError: argparse reports it without echoing the value) ----------


def _key_id(text: str) -> str:
    if parse_key(text) is not None:
        raise argparse.ArgumentTypeError(
            "pass the key's id (the 12 hex characters after sk-gw-), not the key itself"
        )
    if not is_key_id(text):
        raise argparse.ArgumentTypeError("a key id is 12 lowercase hex characters")
    return text


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError("a comma-separated list of names, without empty ones")
    return names


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    what = "a whole number" if kind is int else "a number"

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be {what} greater than 0")
        return value

    return convert


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("must be an amount in US dollars, such as 25.50") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError("must be an amount of 0 or more")
    return value


def _expires(text: str) -> datetime:
    now = datetime.now(UTC)
    match = _DURATION.fullmatch(text)
    if match:
        moment = now + timedelta(**{_UNITS[match[2]]: int(match[1])})
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "a duration from now (90m, 12h, 30d, 4w) or an ISO-8601 time (2026-01-31, "
                "2026-01-31T18:00:00+01:00)"
            ) from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment <= now:
        raise argparse.ArgumentTypeError(f"{moment.isoformat()} is in the past")
    return moment


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("KEY=VALUE, with a non-empty KEY")
    return key, value


# --- the parser ----------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys` and its actions on the `ai-gateway` command's subparsers."""
    keys = sub.add_parser(
        "keys",
        help="manage virtual API keys (create, list, show, revoke, rotate)",
        description="Virtual API keys, stored in the analytics database: the SQLite file "
        "<data_dir>/analytics.db ($AI_GATEWAY_DATA_DIR), or PostgreSQL when DATABASE_URL is "
        "set. A key's secret is shown once, by create and rotate.",
        epilog="Exit status: 0 done; 1 no such key, a refused change or the database "
        "unavailable; 2 a usage or configuration error.",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file, as for serve (default: $AI_GATEWAY_CONFIG, else environment only)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    create = actions.add_parser(
        "create", parents=[common], help="create a key and print its secret (once)"
    )
    create.add_argument("--user", required=True, help="the user the key belongs to")
    create.add_argument("--team", help="the user's team")
    create.add_argument("--name", help="a label for the key")
    create.add_argument(
        "--models",
        type=_names,
        default=(),
        metavar="M1,M2",
        help="allowed model names, comma-separated (default: all models)",
    )
    create.add_argument("--rps", type=_positive(float), metavar="N", help="requests per second")
    create.add_argument(
        "--burst", type=_positive(int), metavar="N", help="requests allowed at once (needs --rps)"
    )
    create.add_argument("--tpm", type=_positive(int), metavar="N", help="tokens per minute")
    create.add_argument(
        "--max-concurrent", type=_positive(int), metavar="N", help="requests in flight at once"
    )
    create.add_argument(
        "--budget", type=_usd, metavar="USD", help="spend limit in USD (needs --budget-period)"
    )
    create.add_argument("--budget-period", choices=BUDGET_PERIODS, help="the budget's period")
    create.add_argument(
        "--guardrails",
        type=_names,
        default=(),
        metavar="P1,P2",
        help="guardrail policies to apply, comma-separated",
    )
    create.add_argument(
        "--expires",
        type=_expires,
        metavar="WHEN",
        help="when the key stops working: a duration (90m, 12h, 30d, 4w) or an ISO-8601 time "
        "(UTC when it has no offset); default: never",
    )
    create.add_argument(
        "--metadata",
        type=_pair,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="labels shown with the key (repeatable)",
    )

    listing = actions.add_parser("list", parents=[common], help="list keys (never their secrets)")
    listing.add_argument("--user", help="only this user's keys")
    listing.add_argument("--team", help="only this team's keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")

    for name, text in (
        ("show", "show a key's settings and status"),
        ("revoke", "revoke a key: it no longer authenticates (revoking again changes nothing)"),
        ("rotate", "give a key a new secret and print it (once); the old secret stops working"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("id", type=_key_id, metavar="ID", help="the key's id")


# --- output --------------------------------------------------------------------------------------


def _fail(message: str, status: int) -> int:
    print(f"ai-gateway keys: error: {message}", file=sys.stderr)
    return status


def _text(view: dict[str, Any]) -> str:
    lines = []
    for name, value in view.items():
        if isinstance(value, list):
            value = ", ".join(value) if value else ("(all)" if name == "models" else "(none)")
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
        lines.append(f"{name + ':':<16}{'-' if value is None else value}")
    return "\n".join(lines)


def _print_key(key: ApiKey, args: argparse.Namespace, token: str | None = None) -> None:
    view = key.public_view()
    if args.json:
        if token is not None:
            print(_ONCE, file=sys.stderr)
        print(json.dumps(issued_view(key, token) if token else view, indent=2))
        return
    if token is not None:
        print(f"\n    {token}\n\n{_ONCE}\n")
    print(_text(view))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def _table(keys: Sequence[ApiKey]) -> str:
    now = datetime.now(UTC)
    header = ("ID", "USER", "TEAM", "NAME", "STATUS", "MODELS", "BUDGET", "EXPIRES", "CREATED")
    rows: list[tuple[str, ...]] = [header]
    for key in keys:
        budget = "-" if key.budget_usd is None else f"{key.budget_usd:f}/{key.budget_period}"
        cells = (
            key.id,
            key.user,
            key.team or "-",
            key.name or "-",
            key.status(now),
            ",".join(key.models) or "(all)",
            budget,
            _when(key.expires_at),
            _when(key.created_at),
        )
        rows.append(tuple(c if len(c) <= 32 else c[:31] + "~" for c in cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


# --- the actions ---------------------------------------------------------------------------------


async def _audit(
    store: SecurityStore, action: str, target: str, outcome: Outcome = "success", **details: Any
) -> None:
    # No user name in the environment or the password database: no os_user.
    with contextlib.suppress(OSError, KeyError):
        details = {"os_user": getpass.getuser(), **details}
    record = AuditRecord(
        actor="cli", action=action, target=target, outcome=outcome, details=details
    )
    await store.write_audit([record])


def _issue(args: argparse.Namespace) -> tuple[ApiKey, str]:
    """The new key `create` asks for (before any database is opened); ValueError: a usage
    error."""
    if (args.budget is None) != (args.budget_period is None):
        raise ValueError("--budget and --budget-period go together (day, week, month or total)")
    if args.burst is not None and args.rps is None:
        raise ValueError("--burst needs --rps (it is the size of the rate limit's bucket)")
    return issue_key(
        user=args.user,
        team=args.team,
        name=args.name,
        models=args.models,
        rps=args.rps,
        burst=args.burst,
        tpm=args.tpm,
        max_concurrent=args.max_concurrent,
        budget_usd=args.budget,
        budget_period=args.budget_period,
        guardrails=args.guardrails,
        expires_at=args.expires,
        metadata=dict(args.metadata),
    )


async def _create(store: SecurityStore, args: argparse.Namespace) -> int:
    key, token = args.issued
    await store.create_key(key)
    await _audit(store, "key.created", key.id, user=key.user, team=key.team, name=key.name)
    if not args.json:
        print(f"Created key {key.id} for user {key.user}. Its secret:")
    _print_key(key, args, token)
    return 0


async def _list(store: SecurityStore, args: argparse.Namespace) -> int:
    keys = await store.list_keys(user=args.user, team=args.team, include_revoked=args.all)
    if args.json:
        print(json.dumps([key.public_view() for key in keys], indent=2))
    elif keys:
        print(_table(keys))
    else:
        print("No keys." if args.all else "No keys (revoked keys are listed with --all).")
    return 0


async def _show(store: SecurityStore, args: argparse.Namespace) -> int:
    key = await store.get_key(args.id)
    if key is None:
        return _fail(f"no key with id {args.id}", 1)
    _print_key(key, args)
    return 0


async def _revoke(store: SecurityStore, args: argparse.Namespace) -> int:
    at = datetime.now(UTC)
    key = await store.revoke_key(args.id, at)
    if key is None:
        await _audit(store, "key.revoked", args.id, "failure", reason="not_found")
        return _fail(f"no key with id {args.id}", 1)
    assert key.revoked_at is not None
    again = key.revoked_at != at
    await _audit(store, "key.revoked", key.id, already_revoked=again)
    if not args.json:
        verb = "was already revoked at" if again else "revoked at"
        print(f"Key {key.id} {verb} {key.revoked_at.isoformat()}.")
    _print_key(key, args)
    return 0


async def _rotate(store: SecurityStore, args: argparse.Namespace) -> int:
    new = new_credentials(args.id)
    try:
        key = await store.rotate_key(args.id, new.salt, new.secret_hash, datetime.now(UTC))
    except KeyRevokedError as exc:
        await _audit(store, "key.rotated", args.id, "failure", reason="revoked")
        return _fail(f"{exc}: create a new key instead", 1)
    if key is None:
        await _audit(store, "key.rotated", args.id, "failure", reason="not_found")
        return _fail(f"no key with id {args.id}", 1)
    await _audit(store, "key.rotated", key.id)
    if not args.json:
        print(f"Rotated key {key.id}: the previous secret no longer works. The new secret:")
    _print_key(key, args, new.token)
    return 0


async def _dispatch(args: argparse.Namespace, store: SecurityStore) -> int:
    actions: dict[str, Handler] = {
        "create": _create,
        "list": _list,
        "show": _show,
        "revoke": _revoke,
        "rotate": _rotate,
    }
    try:
        await store.start()
        return await actions[args.keys_command](store, args)
    finally:
        await store.aclose()


def run(args: argparse.Namespace) -> int:
    """Run the `keys` action `args` names; returns the exit status."""
    from ai_gateway.observability.logging import configure_logging, secrets_of
    from ai_gateway.settings import ConfigError, load_config
    from ai_gateway.stores.analytics import StoreUnavailableError
    from ai_gateway.stores.factory import open_security_store

    if args.keys_command == "create":
        try:
            args.issued = _issue(args)
        except ValueError as exc:
            return _fail(str(exc), 2)
    try:
        config = load_config(args.config)
        # Warnings and errors only, on standard error: standard output is the command's result.
        configure_logging("warning", config.gateway.log_format, secrets=secrets_of(config))
        store = open_security_store(config.gateway)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    known = config.security.guardrails.all_policies
    unknown = [n for n in getattr(args, "guardrails", None) or () if n not in known]
    if unknown:
        return _fail(
            f"--guardrails: {unknown[0]!r} is not a policy of this configuration "
            f"(known: {', '.join(sorted(known))})",
            2,
        )
    try:
        return asyncio.run(_dispatch(args, store))
    except StoreUnavailableError as exc:
        return _fail(f"the key store is unavailable: {exc}", 1)
    except KeyExistsError as exc:
        return _fail(str(exc), 1)
