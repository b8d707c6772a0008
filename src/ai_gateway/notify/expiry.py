"""`key.expiring`: a periodic look over the virtual keys for those that expire soon. Every
instance looks; the event's claim (once per key and expiry date) makes it one delivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ai_gateway.notify.config import KeyExpiryWatch
from ai_gateway.notify.events import Event, key_expiring
from ai_gateway.observability.logging import get_logger
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.security import SecurityStore

log = get_logger(__name__)


class KeyExpiryCheck:
    def __init__(
        self,
        store: SecurityStore,
        config: KeyExpiryWatch,
        emit: Callable[[Event], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._config = config
        self._emit = emit
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> int:
        """Emit `key.expiring` for each live key expiring within the configured days; how many."""
        now = self._clock()
        horizon = now + timedelta(days=self._config.within_days)
        found = 0
        for key in await self._store.list_keys():
            expires = key.expires_at
            if key.revoked_at is not None or expires is None or not now < expires <= horizon:
                continue
            found += 1
            self._emit(
                key_expiring(
                    key_id=key.id, user=key.user, team=key.team, name=key.name, expires_at=expires
                )
            )
        return found

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notify-key-expiry")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except StoreUnavailableError as exc:
                log.warning("key_expiry_check_failed", error=str(exc))
            await asyncio.sleep(self._config.check_interval_s)
