"""The drain's bookkeeping (streaming/drain.py) and its settings; the whole behaviour, on a real
server with SIGTERM, is tests/integration/test_drain.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_gateway.settings import ConfigError, load_config
from ai_gateway.streaming.drain import END_GRACE_S, Drain


class Watcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def drain_began(self) -> None:
        self.calls.append("began")

    def drain_expired(self) -> None:
        self.calls.append("expired")


def test_watchers_are_told_when_it_begins_and_when_it_expires() -> None:
    async def run() -> None:
        drain = Drain(0.05)
        early, gone = Watcher(), Watcher()
        drain.watch(early)
        drain.watch(gone)
        drain.unwatch(gone)
        drain.begin()
        drain.begin()  # a second signal's begin changes nothing
        assert drain.draining
        assert not drain.expired
        assert early.calls == ["began"]
        late = Watcher()  # a stream that started during the drain
        drain.watch(late)
        await asyncio.sleep(0.1)
        assert drain.expired
        assert early.calls == ["began", "expired"]
        assert late.calls == ["began", "expired"]
        assert gone.calls == []
        after = Watcher()  # one that starts after the deadline ends at once
        drain.watch(after)
        await asyncio.sleep(0)
        assert after.calls == ["expired"]

    asyncio.run(run())


def test_wait_ends_when_nothing_is_in_flight_or_after_the_grace() -> None:
    async def run() -> None:
        requests: set[object] = {"one"}
        drain = Drain(0.05)
        drain.track(requests)
        drain.begin()
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, requests.clear)
        started = loop.time()
        await drain.wait()
        assert 0.08 < loop.time() - started < 1

    asyncio.run(run())


def test_wait_gives_up_after_the_deadline_and_its_grace() -> None:
    async def run() -> None:
        drain = Drain(0.0)
        drain.track({"stuck"})
        drain.begin()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await drain.wait()
        assert END_GRACE_S - 0.1 < loop.time() - started < END_GRACE_S + 1

    asyncio.run(run())


def test_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    assert config.gateway.drain_timeout_s == 30
    assert config.streaming.keepalive_interval_s == 15
    assert config.gateway.database_migrate_at_start is True
    monkeypatch.setenv("AI_GATEWAY_DRAIN_TIMEOUT_S", "12.5")
    monkeypatch.setenv("AI_GATEWAY_DATABASE_MIGRATE_AT_START", "false")
    monkeypatch.setenv("AI_GATEWAY_DATABASE_POOL_MAX_SIZE", "8")
    config = load_config()
    assert config.gateway.drain_timeout_s == 12.5
    assert config.gateway.database_migrate_at_start is False
    assert config.gateway.database_pool_max_size == 8
    path = tmp_path / "gateway.yaml"
    path.write_text("gateway: {database_pool_min_size: 9, database_pool_max_size: 3}\n")
    with pytest.raises(ConfigError, match="database_pool_min_size"):
        load_config(path)
    path.write_text("streaming: {keepalive_interval_s: -1}\n")
    with pytest.raises(ConfigError, match="keepalive_interval_s"):
        load_config(path)
    monkeypatch.setenv("AI_GATEWAY_DRAIN_TIMEOUT_S", "-1")
    with pytest.raises(ConfigError, match="drain_timeout_s"):
        load_config()
