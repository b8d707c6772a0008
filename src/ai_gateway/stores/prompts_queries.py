"""The SQL of the prompt store, and its rows, for both dialects (see migration 6).

Templates and schemas are JSON text (jsonb in PostgreSQL, which asyncpg reads and writes as
text); times are converted by the caller (SQLite: INTEGER microseconds, PostgreSQL: timestamptz).
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from ai_gateway.prompts.records import PromptRecord, PromptVersion
from ai_gateway.stores.analytics_queries import Dialect

VERSION_COLUMNS = ("prompt_id", "version", "template", "variables", "note", "created_at")
_VERSIONS = ", ".join(VERSION_COLUMNS)


def insert_prompt_sql(d: Dialect) -> str:
    """$1 id, $2 description, $3 created_at; version 1 is inserted beside it."""
    return (
        "INSERT INTO prompt_templates (id, description, created_at, latest_version) "
        f"VALUES ({d.p(1)}, {d.p(2)}, {d.p(3)}, 1) ON CONFLICT (id) DO NOTHING"
    )


def next_version_sql(d: Dialect) -> str:
    """$1 id: the template's next version number, taken (the row lock serialises adds)."""
    return (
        "UPDATE prompt_templates SET latest_version = latest_version + 1 "
        f"WHERE id = {d.p(1)} RETURNING latest_version"
    )


def insert_version_sql(d: Dialect) -> str:
    params = ", ".join(d.p(i) for i in range(1, len(VERSION_COLUMNS) + 1))
    return f"INSERT INTO prompt_versions ({_VERSIONS}) VALUES ({params})"


def get_prompt_sql(d: Dialect) -> str:
    return (
        f"SELECT id, description, created_at, latest_version FROM prompt_templates "
        f"WHERE id = {d.p(1)}"
    )


LIST_PROMPTS_SQL = (
    "SELECT id, description, created_at, latest_version FROM prompt_templates ORDER BY id"
)
ALL_LABELS_SQL = "SELECT prompt_id, label, version FROM prompt_labels"


def labels_sql(d: Dialect) -> str:
    return f"SELECT prompt_id, label, version FROM prompt_labels WHERE prompt_id = {d.p(1)}"


def get_version_sql(d: Dialect) -> str:
    return (
        f"SELECT {_VERSIONS} FROM prompt_versions WHERE prompt_id = {d.p(1)} AND version = {d.p(2)}"
    )


def set_label_sql(d: Dialect) -> str:
    """$1 id, $2 label, $3 version, $4 time."""
    return (
        "INSERT INTO prompt_labels (prompt_id, label, version, updated_at) "
        f"VALUES ({d.p(1)}, {d.p(2)}, {d.p(3)}, {d.p(4)}) "
        "ON CONFLICT (prompt_id, label) DO UPDATE SET version = excluded.version, "
        "updated_at = excluded.updated_at"
    )


def version_values(version: PromptVersion, when: Callable[[datetime], Any]) -> tuple[Any, ...]:
    return (
        version.prompt_id,
        version.version,
        json.dumps(version.template, ensure_ascii=False),
        json.dumps(version.variables, ensure_ascii=False),
        version.note,
        when(version.created_at),
    )


def version_from_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> PromptVersion:
    values = dict(zip(VERSION_COLUMNS, row, strict=True))
    return PromptVersion(
        prompt_id=values["prompt_id"],
        version=int(values["version"]),
        template=json.loads(values["template"]),
        variables=json.loads(values["variables"]),
        note=values["note"],
        created_at=when(values["created_at"]),
    )


def record_from_row(
    row: Sequence[Any], labels: Iterable[Sequence[Any]], when: Callable[[Any], datetime]
) -> PromptRecord:
    """A prompt_templates row with its prompt_labels rows (prompt_id, label, version)."""
    prompt_id, description, created_at, latest = row
    return PromptRecord(
        id=prompt_id,
        description=description,
        created_at=when(created_at),
        latest_version=int(latest),
        labels={label: int(version) for pid, label, version in labels if pid == prompt_id},
    )
