"""The SQL of the prompt store, and its rows, for both dialects (see migrations 6 and 8).

The same SQL serves every kind of versioned document the store keeps, each in its own three
tables (`Tables`): prompt templates (migration 6) and chains (migration 8). A document has a head
(its id, description and newest version), immutable versions (a JSON body and a JSON Schema of
its variables) and labels pointing at versions.

Bodies and schemas are JSON text (jsonb in PostgreSQL, which asyncpg reads and writes as text);
times are converted by the caller (SQLite: INTEGER microseconds, PostgreSQL: timestamptz).
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ai_gateway.prompts.records import PromptRecord, PromptVersion
from ai_gateway.stores.analytics_queries import Dialect


@dataclass(frozen=True, slots=True)
class Tables:
    """Where one kind of document lives: its heads, versions and labels tables, the column of
    the versions and labels tables that names the document, and the column of its body."""

    kind: str  # names the store's worker and pool ("prompts", "chains")
    heads: str
    versions: str
    labels: str
    owner: str
    body: str

    @property
    def version_columns(self) -> tuple[str, ...]:
        return (self.owner, "version", self.body, "variables", "note", "created_at")


PROMPTS = Tables(
    "prompts", "prompt_templates", "prompt_versions", "prompt_labels", "prompt_id", "template"
)
CHAINS = Tables("chains", "chains", "chain_versions", "chain_labels", "chain_id", "definition")


def insert_prompt_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    """$1 id, $2 description, $3 created_at; version 1 is inserted beside it."""
    return (
        f"INSERT INTO {t.heads} (id, description, created_at, latest_version) "
        f"VALUES ({d.p(1)}, {d.p(2)}, {d.p(3)}, 1) ON CONFLICT (id) DO NOTHING"
    )


def next_version_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    """$1 id: the document's next version number, taken (the row lock serialises adds)."""
    return (
        f"UPDATE {t.heads} SET latest_version = latest_version + 1 "
        f"WHERE id = {d.p(1)} RETURNING latest_version"
    )


def insert_version_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    columns = t.version_columns
    params = ", ".join(d.p(i) for i in range(1, len(columns) + 1))
    return f"INSERT INTO {t.versions} ({', '.join(columns)}) VALUES ({params})"


def get_prompt_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    return f"SELECT id, description, created_at, latest_version FROM {t.heads} WHERE id = {d.p(1)}"


def list_prompts_sql(t: Tables = PROMPTS) -> str:
    return f"SELECT id, description, created_at, latest_version FROM {t.heads} ORDER BY id"


def all_labels_sql(t: Tables = PROMPTS) -> str:
    return f"SELECT {t.owner}, label, version FROM {t.labels}"


def labels_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    return f"SELECT {t.owner}, label, version FROM {t.labels} WHERE {t.owner} = {d.p(1)}"


def get_version_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    return (
        f"SELECT {', '.join(t.version_columns)} FROM {t.versions} "
        f"WHERE {t.owner} = {d.p(1)} AND version = {d.p(2)}"
    )


def set_label_sql(d: Dialect, t: Tables = PROMPTS) -> str:
    """$1 id, $2 label, $3 version, $4 time."""
    return (
        f"INSERT INTO {t.labels} ({t.owner}, label, version, updated_at) "
        f"VALUES ({d.p(1)}, {d.p(2)}, {d.p(3)}, {d.p(4)}) "
        f"ON CONFLICT ({t.owner}, label) DO UPDATE SET version = excluded.version, "
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
    owner, number, body, variables, note, created_at = row
    return PromptVersion(
        prompt_id=owner,
        version=int(number),
        template=json.loads(body),
        variables=json.loads(variables),
        note=note,
        created_at=when(created_at),
    )


def record_from_row(
    row: Sequence[Any], labels: Iterable[Sequence[Any]], when: Callable[[Any], datetime]
) -> PromptRecord:
    """A heads row with its labels rows (owner id, label, version)."""
    prompt_id, description, created_at, latest = row
    return PromptRecord(
        id=prompt_id,
        description=description,
        created_at=when(created_at),
        latest_version=int(latest),
        labels={label: int(version) for pid, label, version in labels if pid == prompt_id},
    )
