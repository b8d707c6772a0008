"""The response store: the Responses API's stored responses (docs/api.md, "Responses API"), in
the analytics database (the same SQLite file, or the same PostgreSQL schema), sharing its
migration history; `ai_gateway.stores.factory.open_response_store(settings)` picks the backend.
"The database is down" raises `StoreUnavailableError`, as the other stores do.

Every read is limited to what `viewer` may see and to responses made at or after `since`
(Unix seconds: older ones have outlived the time to live). The SQL is `responses_queries`; a
backend says how one query runs (`_fetch` for rows, `_write` for rows changed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

from ai_gateway.rag.records import Viewer
from ai_gateway.responses.records import StoredResponse, Turn
from ai_gateway.stores import responses_queries as q
from ai_gateway.stores.analytics_queries import Dialect
from ai_gateway.stores.rag_queries import Query


class ResponseStore(Protocol):
    async def start(self) -> None:
        """Connect and apply pending migrations (StoreUnavailableError when it cannot)."""
        ...

    async def aclose(self) -> None: ...

    async def put(self, record: StoredResponse) -> None: ...

    async def get(self, response_id: str, viewer: Viewer, since: int) -> StoredResponse | None: ...

    async def delete(self, response_id: str, viewer: Viewer, since: int) -> bool:
        """False when there was no such response for `viewer`."""
        ...

    async def chain(self, response_id: str, viewer: Viewer, since: int, limit: int) -> list[Turn]:
        """The response and those before it (`previous_response_id`), oldest first, at most
        `limit`; empty when the response is not there for `viewer`."""
        ...

    async def purge(self, before: int) -> int:
        """Delete the responses made before `before`; how many."""
        ...


class ResponseStoreBase(ABC):
    dialect: ClassVar[Dialect]

    @abstractmethod
    async def _fetch(self, query: Query) -> list[Any]: ...

    @abstractmethod
    async def _write(self, query: Query) -> int: ...

    async def put(self, record: StoredResponse) -> None:
        await self._write(q.insert(self.dialect, record))

    async def get(self, response_id: str, viewer: Viewer, since: int) -> StoredResponse | None:
        rows = await self._fetch(q.get(self.dialect, response_id, viewer, since))
        return q.from_row(rows[0]) if rows else None

    async def delete(self, response_id: str, viewer: Viewer, since: int) -> bool:
        return await self._write(q.delete(self.dialect, response_id, viewer, since)) > 0

    async def chain(self, response_id: str, viewer: Viewer, since: int, limit: int) -> list[Turn]:
        rows = await self._fetch(q.chain(self.dialect, response_id, viewer, since, limit))
        return [q.turn_from_row(row) for row in rows]

    async def purge(self, before: int) -> int:
        return await self._write(q.purge(self.dialect, before))
