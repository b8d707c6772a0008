"""Operating the database: `ai-gateway migrate`, `serve` without migrating
(`database_migrate_at_start: false`), the pool size, and PgBouncer's transaction pooling
(a real PgBouncer in front of the test PostgreSQL, when the `pgbouncer` package is installed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from ai_gateway.settings import GatewaySettings
from ai_gateway.stores import factory
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.postgres_pool import PostgresOptions
from analytics_support import throwaway_database, usage_record, via_port
from harness import EMULATOR_KEY, VENV_BIN, EmulatorServer, free_port, output, start_process

pytestmark = pytest.mark.integration

CLI = str(VENV_BIN / "ai-gateway")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {"AI_GATEWAY_DATA_DIR": str(tmp_path / "data")}
    if request.param == "sqlite":
        yield env
        return
    with throwaway_database() as url:
        yield {**env, "DATABASE_URL": url}


def test_migrate_applies_once_and_check_tells(database_env: dict[str, str]) -> None:
    check = cli("migrate", "--check", env=database_env)
    assert check.returncode == 1, check.stderr
    assert "pending migrations [1, 2" in check.stdout
    first = cli("migrate", env=database_env)
    assert first.returncode == 0, first.stderr
    assert "applied migrations [1, 2" in first.stdout
    again = cli("migrate", env=database_env)
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stdout
    assert cli("migrate", "--check", env=database_env).returncode == 0
    assert "postgres://" not in first.stdout + first.stderr


def test_migrate_names_an_unreachable_database_without_its_password() -> None:
    env = {"DATABASE_URL": "postgresql://gw:hunter2-secret@127.0.0.1:9/db"}
    result = cli("migrate", env=env)
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_serve_without_migrating_needs_ai_gateway_migrate(
    database_env: dict[str, str], emulator: EmulatorServer, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"models:\n  - {{name: fast, provider: openai, model: gpt-4o-mini, "
        f"api_base: '{emulator.url}/v1', api_key: {EMULATOR_KEY}}}\n"
    )
    env = {**database_env, "AI_GATEWAY_DATABASE_MIGRATE_AT_START": "false"}
    port = free_port()
    args = [CLI, "serve", "--config", str(config), "--port", str(port)]
    with start_process(args, env=env) as proc:
        assert proc.wait(60) == 2
        printed = output(proc)
    assert "lacks migrations [1, 2" in printed
    assert "`ai-gateway migrate`" in printed

    assert cli("migrate", env=env).returncode == 0
    with start_process(args, env=env) as proc:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, output(proc)
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code == 200


def test_a_store_that_may_not_migrate_waits_for_the_schema() -> None:
    with throwaway_database() as url:
        store = PostgresAnalyticsStore(url, options=PostgresOptions(migrate=False))

        async def run() -> None:
            with pytest.raises(StoreUnavailableError, match="ai-gateway migrate"):
                await store.start()
            assert cli("migrate", env={"DATABASE_URL": url}).returncode == 0
            await store.start()  # the next call finds the schema in place
            await store.write_usage([usage_record("after-migrate")])
            await store.aclose()

        asyncio.run(run())


def test_pool_size_from_the_options() -> None:
    with throwaway_database() as url:
        name = urlsplit(url).path.lstrip("/")

        async def run() -> int:
            store = PostgresAnalyticsStore(url, options=PostgresOptions(min_size=3, max_size=5))
            await store.start()
            admin = await asyncpg.connect(url)
            try:
                return int(
                    await admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND application_name = 'ai-gateway-analytics'",
                        name,
                    )
                )
            finally:
                await admin.close()
                await store.aclose()

        assert asyncio.run(run()) == 3  # the pool opened its minimum


# -- PgBouncer ------------------------------------------------------------------------------------

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(tmp_path: Path) -> Iterator[int]:
    """PgBouncer in transaction pooling mode in front of the test PostgreSQL (trust auth)."""
    if not Path(PGBOUNCER).exists():
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")
    target = urlsplit(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/"))
    port = free_port()
    folder = tmp_path / "pgbouncer"
    folder.mkdir()
    folder.chmod(0o777)  # PgBouncer refuses to run as root: it runs as nobody
    (folder / "users.txt").write_text(f'"{target.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={target.hostname or "127.0.0.1"} port={target.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
unix_socket_dir =
default_pool_size = 4
max_client_conn = 200
"""
    )
    for item in folder.iterdir():
        item.chmod(0o644)
    args = [PGBOUNCER, *(["-u", "nobody"] if os.geteuid() == 0 else []), "pgbouncer.ini"]
    with start_process(args, cwd=folder) as proc:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, output(proc)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "PgBouncer did not start"
                time.sleep(0.1)
        yield port


def test_pgbouncer_transaction_pooling(pgbouncer: int) -> None:
    with throwaway_database() as direct:
        url = via_port(direct, pgbouncer)
        # The session settings a direct connection uses are refused by PgBouncer...
        plain = PostgresAnalyticsStore(url, connect_timeout_s=3)
        # ...the PgBouncer mode sets none, and keeps no prepared statement.
        bouncer = PostgresOptions(pgbouncer=True, max_size=6)
        store = PostgresAnalyticsStore(url, options=bouncer)

        async def run() -> None:
            with pytest.raises(StoreUnavailableError, match="search_path"):
                await plain.start()
            await plain.aclose()
            await store.start()  # migrates through PgBouncer
            # Many queries over few server connections, each one on whichever is free.
            records = [usage_record(f"bouncer-{i}") for i in range(40)]
            await asyncio.gather(*(store.write_usage([r]) for r in records))
            rows = await asyncio.gather(*(store.has_request(f"bouncer-{i}") for i in range(40)))
            assert all(rows)
            await store.aclose()

        asyncio.run(run())
        env = {"DATABASE_URL": url, "AI_GATEWAY_DATABASE_PGBOUNCER": "true"}
        assert cli("migrate", "--check", env=env).returncode == 0


def test_every_store_the_gateway_opens_works_through_pgbouncer(pgbouncer: int) -> None:
    """Each PostgreSQL store `serve` opens takes the settings' PgBouncer mode (one that did not
    would send the session settings PgBouncer refuses, and fail to start)."""
    with throwaway_database() as direct:
        settings = GatewaySettings(
            database_url=via_port(direct, pgbouncer), database_pgbouncer=True
        )
        opens = (
            factory.open_analytics_store,
            factory.open_security_store,
            factory.open_prompt_store,
            factory.open_chain_store,
            factory.open_rag_store,
            factory.open_response_store,
        )

        async def run() -> None:
            for open_store in opens:
                store = open_store(settings)
                try:
                    await store.start()
                finally:
                    await store.aclose()

        asyncio.run(run())
