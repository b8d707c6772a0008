"""Versioned, forward-only schema migrations for the analytics store, one module per dialect.

Each dialect's `MIGRATIONS` is an ordered tuple of `Migration(version, name, statements)`. A
database records what it has in `schema_migrations` (version, name, applied_at); `start()` applies
the missing versions in order, all in one transaction with the table, under a lock (SQLite: the
database's write lock, `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), so two
gateway instances starting at once apply each migration once and the second one sees it done.

A migration, once released, is never edited: a change to the schema is a new version. Versions a
database has that this gateway does not know (a newer gateway migrated it) are left alone.

The SQL lives in Python modules rather than `.sql` files so that it ships inside the package
without any package-data configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def pending(migrations: Sequence[Migration], applied: Collection[int]) -> list[Migration]:
    """The migrations not yet applied, in version order."""
    return sorted((m for m in migrations if m.version not in applied), key=lambda m: m.version)


def check(migrations: Sequence[Migration]) -> None:
    """Versions are 1, 2, 3... with no gap or repeat (a test calls this for each dialect)."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1..n in order, got {versions}")


def latest(migrations: Sequence[Migration]) -> int:
    return max((m.version for m in migrations), default=0)
