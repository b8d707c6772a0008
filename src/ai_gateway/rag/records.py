"""What the RAG store persists: files, vector stores, the files in a store, and file batches.
Plain data. Times are Unix seconds, as OpenAI's objects give them. `view()` renders each as
OpenAI's API reference shapes it.

Ownership: each file and store records an `Owner` (the scope it was made in, `rag.scope`, and
that scope's value). A `Viewer` (who is asking) sees a record when it is the master key or its
own value for the record's scope kind is the record's: the key id, the user, or the team.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]
BatchStatus = Literal["in_progress", "completed", "failed", "cancelled"]
OwnerKind = Literal["key", "user", "team", "master", "anyone"]
AttributeValue = str | float | bool
ErrorCode = Literal["server_error", "unsupported_file", "invalid_file"]


@dataclass(frozen=True, slots=True)
class Owner:
    """`anyone`: made on a gateway without authentication (value ""), seen by every caller;
    `master`: made with the master key (value ""), seen by the master key alone."""

    kind: OwnerKind
    value: str


ANYONE = Owner("anyone", "")
MASTER_OWNER = Owner("master", "")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking. `all`: the master key (and a gateway without authentication)."""

    all: bool = False
    key: str | None = None
    user: str | None = None
    team: str | None = None

    def sees(self, owner: Owner) -> bool:
        if self.all or owner.kind == "anyone":
            return True
        if owner.kind == "master":
            return False
        mine = {"key": self.key, "user": self.user, "team": self.team}[owner.kind]
        return mine is not None and mine == owner.value


EVERYONE = Viewer(all=True)


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str  # file-<hex>
    filename: str
    bytes: int
    purpose: str
    created_at: int
    owner: Owner
    sha256: str  # of the bytes

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def view(self) -> dict[str, int]:
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class VectorStoreRecord:
    id: str  # vs_<hex>
    name: str | None
    description: str | None
    metadata: dict[str, str]
    created_at: int
    last_active_at: int
    expires_after: dict[str, Any] | None  # {"anchor": "last_active_at", "days": N}
    owner: Owner
    # Filled in by the store when read (sums over the store's files):
    file_counts: FileCounts = field(default_factory=FileCounts)
    usage_bytes: int = 0

    @property
    def expires_at(self) -> int | None:
        if self.expires_after is None:
            return None
        return self.last_active_at + int(self.expires_after["days"]) * 86_400

    def expired(self, now: int) -> bool:
        expires_at = self.expires_at
        return expires_at is not None and expires_at <= now

    def view(self, now: int | None = None) -> dict[str, Any]:
        """`now`: to show an expired store as `expired`."""
        status = "in_progress" if self.file_counts.in_progress else "completed"
        if now is not None and self.expired(now):
            status = "expired"
        return {
            "id": self.id,
            "object": "vector_store",
            "created_at": self.created_at,
            "name": self.name,
            "description": self.description,
            "usage_bytes": self.usage_bytes,
            "file_counts": self.file_counts.view(),
            "status": status,
            "expires_after": self.expires_after,
            "expires_at": self.expires_at,
            "last_active_at": self.last_active_at,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class LastError:
    code: ErrorCode
    message: str

    def view(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class StoreFileRecord:
    """A file in a vector store. `chunking` is the strategy as OpenAI shows it (always `static`
    with its sizes once resolved: `auto` is 800 tokens with 400 of overlap)."""

    store_id: str
    file_id: str
    status: FileStatus
    created_at: int
    chunking: dict[str, Any]
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    last_error: LastError | None = None
    usage_bytes: int = 0
    chunks: int = 0
    batch_id: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.file_id,
            "object": "vector_store.file",
            "usage_bytes": self.usage_bytes,
            "created_at": self.created_at,
            "vector_store_id": self.store_id,
            "status": self.status,
            "last_error": self.last_error.view() if self.last_error is not None else None,
            "chunking_strategy": self.chunking,
            "attributes": self.attributes,
        }


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str  # vsfb_<hex>
    store_id: str
    created_at: int
    cancelled: bool = False
    # Filled in by the store when read (over the batch's files):
    file_counts: FileCounts = field(default_factory=FileCounts)

    @property
    def status(self) -> BatchStatus:
        counts = self.file_counts
        if counts.in_progress:
            return "cancelled" if self.cancelled else "in_progress"
        if self.cancelled:
            return "cancelled"
        if counts.total and counts.failed == counts.total:
            return "failed"
        return "completed"

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "vector_store.files_batch",
            "created_at": self.created_at,
            "vector_store_id": self.store_id,
            "status": self.status,
            "file_counts": self.file_counts.view(),
        }


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a list: `limit` items after (or before) the item with id `after` (`before`),
    newest first (`order` "desc") or oldest first ("asc"), in the order items were made."""

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None
