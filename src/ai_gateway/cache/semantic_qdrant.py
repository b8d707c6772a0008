"""What the semantic index needs around the Qdrant client: the error it raises, where a Qdrant
server is (its URL without credentials), the thread embedded Qdrant runs on, and how a collection
is opened and made."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ai_gateway.redaction import scrub

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

T = TypeVar("T")

_DETAIL_CHARS = 300


class SemanticIndexError(Exception):
    """The index is unreachable or failed. The message names no secret (no URL credentials)."""


def index_error(what: str, exc: BaseException, secrets: Iterable[str | None]) -> SemanticIndexError:
    """`what` went wrong because of `exc`: its type and (scrubbed, cut short) message."""
    detail = scrub(str(exc), secrets)[:_DETAIL_CHARS] or "no detail"
    return SemanticIndexError(f"{what}: {type(exc).__name__}: {detail}")


@dataclass(frozen=True, slots=True)
class QdrantServer:
    url: str  # scheme, host, port and path: no credentials
    api_key: str | None
    shown: str  # scheme, host and port, for messages and logs

    def __repr__(self) -> str:  # the dataclass's would show the API key
        return f"QdrantServer({self.shown})"

    @classmethod
    def parse(cls, raw: str) -> QdrantServer:
        """`http(s)://host:port[/prefix]`, with the API key, if any, as the URL's password
        (`https://:KEY@host:6333`) or its `api_key` query parameter (`...?api_key=KEY`)."""
        parts = urlsplit(raw)
        host = parts.netloc.rpartition("@")[2]
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SemanticIndexError(
                "cache.semantic.qdrant_url must be an http(s) URL such as "
                "http://127.0.0.1:6333 (an API key goes in as https://:KEY@host:6333)."
            )
        query = dict(parse_qsl(parts.query))
        api_key = unquote(parts.password or "") or query.get("api_key") or None
        shown = f"{parts.scheme}://{host}"
        return cls(url=shown + parts.path.rstrip("/"), api_key=api_key, shown=shown)


class LocalThread:
    """A thread with an event loop of its own, for embedded Qdrant: its async client does its
    work synchronously, so each call runs here, one at a time and in order (its in-memory
    collections are not thread-safe), while the caller's loop only waits."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="semantic-index-qdrant", daemon=True
        )
        self._thread.start()

    async def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run `call` on this thread's loop; cancelling the caller cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self._loop))

    def stop(self) -> None:
        """Stop after the call under way (if any), and wait for that."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class FolderInUseError(Exception):
    """Another process holds embedded Qdrant's lock on the folder."""


async def open_embedded(path: str) -> AsyncQdrantClient:
    """Embedded Qdrant in `path`. Run it on a LocalThread: importing the client, reading every
    point and locking the folder all block."""
    # qdrant_client reads every point before it tries the folder's lock, and leaves the lock
    # file open when that fails: look first.
    if _folder_locked(path):
        raise FolderInUseError(path)
    from qdrant_client import AsyncQdrantClient

    try:
        return AsyncQdrantClient(path=path)
    except RuntimeError as exc:
        if "already accessed" in str(exc):  # taken since we looked
            raise FolderInUseError(path) from exc
        raise


def _folder_locked(path: str) -> bool:
    """Whether another process holds the lock qdrant_client takes on `<path>/.lock`."""
    import portalocker

    lock_file = os.path.join(path, ".lock")
    if not os.path.exists(lock_file):  # the first to open the folder makes it
        return False
    exclusive = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
    with open(lock_file, "r+") as file:
        try:
            portalocker.lock(file, exclusive)
        except portalocker.exceptions.LockException:
            return True
        portalocker.unlock(file)
    return False


async def create_collection(
    client: AsyncQdrantClient, name: str, size: int, *, indexes: bool
) -> None:
    """Make the collection of `size`-long vectors (cosine) unless it exists, and (`indexes`, on a
    server) the payload indexes of the search's filters: creating one again changes nothing.
    Embedded Qdrant has no payload indexes: it warns and does nothing."""
    from qdrant_client import models

    if not await client.collection_exists(name):
        try:
            await client.create_collection(
                name, vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE)
            )
        except Exception:
            if not await client.collection_exists(name):  # else another instance made it first
                raise
    if indexes:
        tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
        await client.create_payload_index(name, "partition", field_schema=tenant)
        await client.create_payload_index(
            name, "params", field_schema=models.PayloadSchemaType.KEYWORD
        )
        await client.create_payload_index(
            name, "expires_at", field_schema=models.PayloadSchemaType.FLOAT
        )
