"""The security store's interface: virtual API keys and the audit log.

It lives in the analytics database (same SQLite file, or same PostgreSQL schema) and shares its
migration history; `ai_gateway.stores.factory.open_security_store(settings)` picks the backend.
Errors that mean "the database is down" raise `StoreUnavailableError`, as the analytics stores do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.keys import ApiKey

MAX_AUDIT_LIMIT = 10_000


class KeyExistsError(Exception):
    """A key with this id is already stored (ids are random: in practice, a retried create)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"a key with id {key_id!r} already exists")
        self.key_id = key_id


class KeyRevokedError(Exception):
    """The key is revoked: a revoked key cannot be rotated (create a new one)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"key {key_id!r} is revoked; a revoked key cannot be rotated")
        self.key_id = key_id


def check_audit_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_AUDIT_LIMIT}")


class SecurityStore(Protocol):
    async def start(self) -> None:
        """Connect and apply pending schema migrations (the analytics store's runner and
        history). PostgreSQL down: StoreUnavailableError, and later calls try again."""
        ...

    async def aclose(self) -> None: ...

    async def create_key(self, key: ApiKey) -> None:
        """Store a new key; KeyExistsError when its id is taken."""
        ...

    async def get_key(self, key_id: str) -> ApiKey | None: ...

    async def list_keys(
        self, *, user: str | None = None, team: str | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        """Keys of `user` and/or `team` (all when None), oldest first; revoked ones only with
        `include_revoked`. Expired keys are listed (their `status()` says so)."""
        ...

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked at `at` and return it; revoking again keeps the first time.
        None when there is no such key."""
        ...

    async def rotate_key(
        self, key_id: str, salt: bytes, secret_hash: bytes, at: datetime
    ) -> ApiKey | None:
        """Replace the key's secret (see `security.keys.new_credentials`): the old secret stops
        working at once. None when there is no such key; KeyRevokedError when it is revoked."""
        ...

    async def write_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append a batch; a record whose id is stored already is skipped (retries are safe).
        Audit rows are never updated or deleted, and retention does not apply to them."""
        ...

    async def audit(
        self,
        *,
        start: datetime,
        end: datetime,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Records with start <= created_at < end and the given action/actor/target, newest
        first, at most `limit` (1..10000), JSON-ready (`AuditRecord.to_dict()`'s shape)."""
        ...
