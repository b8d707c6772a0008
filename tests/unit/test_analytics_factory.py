"""Choosing the analytics store from the settings (nothing connects here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from ai_gateway.app_analytics import analytics_writer
from ai_gateway.settings import ConfigError, GatewaySettings
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.stores.factory import open_analytics_store
from analytics_support import usage_record


def test_factory_defaults_to_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    store = open_analytics_store(GatewaySettings(data_dir=str(data_dir)))
    assert isinstance(store, SQLiteAnalyticsStore)
    assert store.path == data_dir / "analytics.db"
    assert data_dir.is_dir()


def test_factory_uses_postgres_when_a_database_url_is_set(tmp_path: Path) -> None:
    url = SecretStr("postgresql://gateway:pw@db.internal:5432/analytics")
    settings = GatewaySettings(database_url=url, data_dir=str(tmp_path / "unused"))
    assert isinstance(open_analytics_store(settings), PostgresAnalyticsStore)
    assert not (tmp_path / "unused").exists()


def test_the_writer_holds_as_many_records_as_the_settings_say(tmp_path: Path) -> None:
    settings = GatewaySettings(data_dir=str(tmp_path), analytics_buffer=100)
    writer = analytics_writer(settings, open_analytics_store(settings))
    for i in range(101):
        writer.submit_usage(usage_record(f"r{i}"))
    assert (writer.stats.pending, writer.stats.dropped) == (100, 1)


@pytest.mark.parametrize("url", ["mysql://gateway:hunter2-secret@db/x", "hunter2-secret"])
def test_factory_rejects_other_urls_without_repeating_them(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_analytics_store(GatewaySettings(database_url=SecretStr(url)))
    assert "hunter2-secret" not in str(caught.value)
    assert "postgresql://" in str(caught.value)
