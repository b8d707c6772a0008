"""`ai-gateway keys` as an operator runs it: a real process, on SQLite under AI_GATEWAY_DATA_DIR
and on a throwaway PostgreSQL database (DATABASE_URL)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ai_gateway.cli import main
from ai_gateway.security.keys import ApiKey, parse_key
from ai_gateway.stores.security_postgres import PostgresSecurityStore
from ai_gateway.stores.security_sqlite import SQLiteSecurityStore
from analytics_support import throwaway_database
from harness import VENV_BIN

pytestmark = pytest.mark.integration

AI_GATEWAY = str(VENV_BIN / "ai-gateway")
TOKEN = re.compile(r"sk-gw-[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


class Keys:
    """Runs `ai-gateway keys ...` against one database."""

    def __init__(self, env: dict[str, str], store: SQLiteSecurityStore | PostgresSecurityStore):
        self.env = env
        self.store = store

    def __call__(self, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AI_GATEWAY, "keys", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )
        assert result.returncode == status, result.stdout + result.stderr
        return result

    async def stored(self, key_id: str) -> ApiKey:
        """The key as the database holds it (read with a store of the test's own)."""
        key = await self.store.get_key(key_id)
        assert key is not None
        return key

    async def audit(self, key_id: str) -> list[tuple[str, str, str]]:
        now = datetime.now(UTC)
        rows = await self.store.audit(start=now - timedelta(hours=1), end=now, target=key_id)
        return [(r["actor"], r["action"], r["outcome"]) for r in reversed(rows)]


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    env.pop("AI_GATEWAY_CONFIG", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture
async def sqlite_keys(tmp_path: Path) -> AsyncIterator[Keys]:
    data = tmp_path / "gw-data"
    keys = Keys(
        _environment(AI_GATEWAY_DATA_DIR=str(data)), SQLiteSecurityStore(data / "analytics.db")
    )
    yield keys
    await keys.store.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Keys]:
    if request.param == "sqlite":
        data = tmp_path / "gw-data"
        env = _environment(AI_GATEWAY_DATA_DIR=str(data))
        store: SQLiteSecurityStore | PostgresSecurityStore = SQLiteSecurityStore(
            data / "analytics.db"
        )
    else:
        url = request.getfixturevalue("pg_database")
        env = _environment(DATABASE_URL=url, AI_GATEWAY_DATA_DIR=str(tmp_path / "unused"))
        store = PostgresSecurityStore(url)
    runner = Keys(env, store)
    yield runner
    await store.aclose()


def only_token(output: str) -> str:
    tokens = TOKEN.findall(output)
    assert len(tokens) == 1, output
    return str(tokens[0])


def secret_of(token: str) -> str:
    parsed = parse_key(token)
    assert parsed is not None
    return parsed[1]


async def test_create_list_rotate_revoke_show(keys: Keys, tmp_path: Path) -> None:
    created = keys(
        "create",
        "--user",
        "alice",
        "--team",
        "core",
        "--name",
        "ci",
        "--models",
        "fast, smart",
        "--rps",
        "2",
        "--burst",
        "4",
        "--budget",
        "25.50",
        "--budget-period",
        "month",
        "--expires",
        "30d",
        "--metadata",
        "env=prod",
        "owner=bob",
    )
    token = only_token(created.stdout)
    assert "only time the key is shown" in created.stdout
    key_id, secret = parse_key(token) or ("", "")
    stored = await keys.stored(key_id)
    assert stored.verify(secret)
    assert stored.user == "alice"
    assert stored.team == "core"
    assert stored.models == ("fast", "smart")
    assert stored.budget_usd == Decimal("25.50")
    assert stored.budget_period == "month"
    assert stored.metadata == {"env": "prod", "owner": "bob"}
    assert stored.expires_at is not None
    assert timedelta(days=29) < stored.expires_at - datetime.now(UTC) <= timedelta(days=30)
    assert secret not in created.stderr

    listing = keys("list")
    assert key_id in listing.stdout
    assert "alice" in listing.stdout
    assert "active" in listing.stdout
    assert "sk-gw-" not in listing.stdout
    assert secret not in listing.stdout
    as_json = json.loads(keys("list", "--json").stdout)
    assert [k["id"] for k in as_json] == [key_id]
    assert "secret_hash" not in as_json[0]
    assert "salt" not in as_json[0]
    assert stored.secret_hash.hex() not in json.dumps(as_json)

    rotated = keys("rotate", key_id)
    new_token = only_token(rotated.stdout)
    assert new_token.startswith(f"sk-gw-{key_id}_")
    assert new_token != token
    after = await keys.stored(key_id)
    assert after.verify(secret_of(new_token))
    assert not after.verify(secret)
    assert after.rotated_at is not None

    revoked = keys("revoke", key_id)
    assert f"Key {key_id} revoked at" in revoked.stdout
    again = keys("revoke", key_id)
    assert "already revoked" in again.stdout
    shown = keys("show", key_id)
    assert re.search(r"status:\s+revoked", shown.stdout)
    assert "sk-gw-" not in shown.stdout
    assert json.loads(keys("show", key_id, "--json").stdout)["status"] == "revoked"
    assert (await keys.stored(key_id)).revoked_at is not None
    assert key_id not in keys("list").stdout  # revoked keys only with --all
    assert key_id in keys("list", "--all").stdout

    refused = keys("rotate", key_id, status=1)
    assert "revoked" in refused.stderr
    assert "sk-gw-" not in refused.stdout

    assert await keys.audit(key_id) == [
        ("cli", "key.created", "success"),
        ("cli", "key.rotated", "success"),
        ("cli", "key.revoked", "success"),
        ("cli", "key.revoked", "success"),
        ("cli", "key.rotated", "failure"),
    ]


async def test_json_create_for_scripts(sqlite_keys: Keys) -> None:
    result = sqlite_keys("create", "--user", "svc", "--json")
    data = json.loads(result.stdout)
    key_id, secret = parse_key(data["key"]) or ("", "")
    assert data["id"] == key_id
    assert data["models"] == []
    assert "only time the key is shown" in result.stderr
    assert (await sqlite_keys.stored(key_id)).verify(secret)


def test_unknown_ids_and_refusals_exit_1(sqlite_keys: Keys) -> None:
    for action in ("show", "revoke", "rotate"):
        result = sqlite_keys(action, "0123456789ab", status=1)
        assert "no key with id 0123456789ab" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create"], "--user"),
        (["create", "--user", "u", "--budget", "5"], "--budget and --budget-period go together"),
        (["create", "--user", "u", "--budget", "-5", "--budget-period", "day"], "--budget"),
        (["create", "--user", "u", "--budget", "five", "--budget-period", "day"], "US dollars"),
        (["create", "--user", "u", "--budget-period", "year"], "invalid choice"),
        (["create", "--user", "u", "--rps", "0"], "greater than 0"),
        (["create", "--user", "u", "--burst", "5"], "--burst needs --rps"),
        (["create", "--user", "u", "--tpm", "1.5"], "whole number"),
        (["create", "--user", "u", "--max-concurrent", "0"], "whole number greater than 0"),
        (["create", "--user", "u", "--models", "a,,b"], "without empty ones"),
        (["create", "--user", "u", "--expires", "2001-01-01"], "in the past"),
        (["create", "--user", "u", "--expires", "soon"], "a duration from now"),
        (["create", "--user", "u", "--metadata", "novalue"], "KEY=VALUE"),
        (["create", "--user", "u", "--metadata", "k=sk-proj-abcdefghijkl"], "credential"),
        (["create", "--user", ""], "user must be a non-empty string"),
        (["show", "xyz"], "12 lowercase hex"),
        (["revoke"], "ID"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    # In this process (checked before any configuration or database is read), for speed.
    try:
        status = main(["keys", *args])
    except SystemExit as exit_:  # argparse's own errors
        status = int(exit_.code or 0)
    out, err = capsys.readouterr()
    assert status == 2
    assert message in err
    assert out == ""
    assert not list(tmp_path.rglob("analytics.db"))


def test_a_full_key_given_as_an_id_is_not_echoed(sqlite_keys: Keys) -> None:
    token = only_token(sqlite_keys("create", "--user", "u").stdout)
    result = sqlite_keys("show", token, status=2)
    assert "not the key itself" in result.stderr
    assert secret_of(token) not in result.stderr


def test_a_bad_database_url_or_config_exits_2(sqlite_keys: Keys, tmp_path: Path) -> None:
    sqlite_keys.env["DATABASE_URL"] = "mysql://root:hunter2@db/x"
    result = sqlite_keys("list", status=2)
    assert "database_url" in result.stderr
    assert "hunter2" not in result.stderr
    del sqlite_keys.env["DATABASE_URL"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {no_such_setting: 1}\n")
    assert "gateway.no_such_setting" in sqlite_keys("list", "--config", str(bad), status=2).stderr


def test_an_unreachable_database_exits_1_without_its_password(sqlite_keys: Keys) -> None:
    sqlite_keys.env["DATABASE_URL"] = "postgresql://gw:hunter2-secret@127.0.0.1:9/db"
    result = sqlite_keys("list", status=1)
    assert "the key store is unavailable" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_the_config_file_names_the_database(sqlite_keys: Keys, tmp_path: Path) -> None:
    chosen = tmp_path / "from-config"
    config = tmp_path / "gw.yaml"
    config.write_text(f"gateway:\n  data_dir: '{chosen}'\n")
    del sqlite_keys.env["AI_GATEWAY_DATA_DIR"]  # the file's value, as `serve` would read it
    sqlite_keys("create", "--user", "u", "--config", str(config))
    assert (chosen / "analytics.db").is_file()
    assert "u" in sqlite_keys("list", "--config", str(config)).stdout


def test_help_is_accurate() -> None:
    top = subprocess.run([AI_GATEWAY, "--help"], capture_output=True, text=True, check=True)
    assert "keys" in top.stdout
    keys_help = subprocess.run(
        [AI_GATEWAY, "keys", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for action in ("create", "list", "show", "revoke", "rotate"):
        assert action in keys_help
    create = subprocess.run(
        [AI_GATEWAY, "keys", "create", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--user",
        "--team",
        "--name",
        "--models",
        "--rps",
        "--burst",
        "--tpm",
        "--max-concurrent",
        "--budget",
        "--budget-period",
        "--guardrails",
        "--expires",
        "--metadata",
        "--config",
    ):
        assert flag in create


async def test_guardrail_policies_must_exist_in_the_configuration(
    sqlite_keys: Keys, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "security:\n  guardrails:\n    policies:\n"
        "      - {name: strict, rules: [{name: r, detector: card, action: block}]}\n"
    )
    refused = sqlite_keys(
        "create", "--user", "u", "--guardrails", "stritc", "--config", str(config), status=2
    )
    assert "'stritc' is not a policy of this configuration" in refused.stderr
    assert "default-pii, strict" in refused.stderr
    ok = sqlite_keys(
        "create", "--user", "u", "--guardrails", "strict,default-pii", "--config", str(config)
    )
    key_id = parse_key(only_token(ok.stdout))
    assert key_id is not None
    assert (await sqlite_keys.stored(key_id[0])).guardrails == ("strict", "default-pii")
