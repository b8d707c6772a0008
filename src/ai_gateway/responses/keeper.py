"""Stored responses for the API: who owns and who sees one (RAG's rule, rag/access.py, with
`responses.scope`), how long they live (`responses.ttl_days`: older ones are not read, and an
hourly sweep deletes them), and the store's failures as a 503 that says so.

Without a store (`responses.store: false`) nothing is kept: reads find nothing and writes do
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ai_gateway.errors import ServiceUnavailableError
from ai_gateway.observability.logging import get_logger
from ai_gateway.rag.access import owner_of, viewer_of
from ai_gateway.rag.records import Owner
from ai_gateway.responses.config import ResponsesConfig
from ai_gateway.responses.records import StoredResponse, Turn
from ai_gateway.security.principal import Principal
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.responses import ResponseStore

log = get_logger(__name__)
SWEEP_S = 3600.0
DAY_S = 86_400


@asynccontextmanager
async def _store_errors() -> AsyncIterator[None]:
    try:
        yield
    except StoreUnavailableError:
        raise ServiceUnavailableError(
            "The response store is unavailable; retry shortly.",
            code="response_store_unavailable",
        ) from None


class Keeper:
    def __init__(
        self, config: ResponsesConfig, store: ResponseStore | None, sweep_s: float = SWEEP_S
    ) -> None:
        self.config = config
        self.store = store
        self._sweep_s = sweep_s
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def _since(self) -> int:
        return int(time.time()) - self.config.ttl_days * DAY_S

    async def get(self, response_id: str, principal: Principal | None) -> StoredResponse | None:
        if self.store is None:
            return None
        async with _store_errors():
            return await self.store.get(response_id, viewer_of(principal), self._since())

    async def chain(self, response_id: str, principal: Principal | None) -> list[Turn]:
        """The response and those before it, oldest first (empty: not there for the caller)."""
        if self.store is None:
            return []
        async with _store_errors():
            return await self.store.chain(
                response_id, viewer_of(principal), self._since(), self.config.max_chain
            )

    async def delete(self, response_id: str, principal: Principal | None) -> bool:
        if self.store is None:
            return False
        async with _store_errors():
            return await self.store.delete(response_id, viewer_of(principal), self._since())

    async def keep(self, record: StoredResponse) -> bool:
        """Store a finished response. The answer was generated and paid for: a store that is
        down does not fail it; the response is then not retrievable (logged)."""
        if self.store is None:
            return False
        try:
            await self.store.put(record)
        except StoreUnavailableError as exc:
            log.warning("response_not_stored", response_id=record.id, error=str(exc)[:300])
            return False
        return True

    def owner(self, principal: Principal | None) -> Owner:
        return owner_of(principal, self.config.scope)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sweep. The store itself opens on first use (connects, migrates), so a
        gateway whose callers never use the Responses API never touches it."""
        if self.store is not None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_s)
            try:
                removed = await self.store.purge(self._since()) if self.store else 0
                if removed:
                    log.info("responses_expired", removed=removed)
            except StoreUnavailableError as exc:
                log.warning("responses_sweep_failed", error=str(exc)[:300])

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self.store is not None:
            await self.store.aclose()
