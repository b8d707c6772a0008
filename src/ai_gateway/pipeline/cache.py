"""The response-cache stage (docs/caching.md), between the content rules and the provider call:
cached answers pass through the current output rules on every hit, and a hit is admitted (it
counts as a request for rate limits) but costs nothing and uses no token limits.

Before: the request's cache policy (config, per model name and per key; the client's
`Cache-Control` and `cache` field), its key (cache/key.py), then a lookup: exact, then semantic
for the model names that turn it on. A hit answers from the entry (JSON, or its chunks replayed
as a stream). A miss joins the key's flight (cache/flight.py): the first request calls the
upstream, identical requests arriving meanwhile share its answer. After: a complete answer (never
an error, an aborted or a failed stream) is stored.

A cache backend or index that does not answer means a bypass for that request, never an error.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal

import orjson

from ai_gateway.cache.config import CacheConfig
from ai_gateway.cache.entry import (
    BadEntryError,
    Entry,
    encode_entry,
    is_complete,
    replay,
    stream_finished,
)
from ai_gateway.cache.flight import Flight, FlightAbandoned, Flights, abandoned_error, drain
from ai_gateway.cache.semantic_query import SemanticLookup
from ai_gateway.cache.store import CacheStore, CacheUnavailableError, MemoryStore
from ai_gateway.errors import GatewayError, ServiceUnavailableError
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.cache_policy import Policy, policy_of
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind, Outcome

log = get_logger(__name__)
LOG_EVERY_S = 10.0
LOCK_POLL_S = 0.05


class Cache:
    def __init__(
        self,
        config: CacheConfig,
        store: CacheStore,
        metrics: Metrics,
        semantic: SemanticLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        # The in-process store answers at once: looked up and written without an await.
        self._memory = store if isinstance(store, MemoryStore) and not store.deferred else None
        self._metrics = metrics
        self._semantic = semantic
        self._flights = Flights()
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._storing: set[asyncio.Task[None]] = set()  # store calls in the background
        # Entries waiting to be stored in the background, and the task storing them (one for
        # a burst of them, not one per request).
        self._writes: deque[_Write] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._counts = {status: metrics.cache_lookups.labels(status) for status in STATUSES}
        self._stored_bytes = metrics.cache_bytes.labels("stored")
        self._served_bytes = metrics.cache_bytes.labels("served")
        # Off unless something turns it on: then this stage is one call per request.
        rules = (*config.models.values(), *config.keys.values())
        self._on = config.enabled or any(rule.enabled for rule in rules)

    def skips(self, exchange: Exchange) -> bool:
        return not self._on or exchange.kind is not Kind.CHAT

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        if self.skips(exchange):
            return await next(exchange)
        policy = policy_of(self._config, exchange, semantic=self._semantic is not None)
        if policy is None:
            return await next(exchange)
        exchange.headers["x-gateway-cache-key"] = policy.key.digest
        if not policy.lookup and not policy.store:
            return await self._bypass(exchange, next)
        if policy.lookup:
            key = policy.key
            try:
                if self._memory is not None:
                    data = self._memory.peek(key.namespace, key.digest)
                else:
                    data = await self._store.get(key.namespace, key.digest)
                entry = self._entry(key.namespace, key.digest, data, policy)
                if entry is not None:
                    self._found(exchange, entry, "hit")
                    return self._serve(exchange)
                if policy.semantic and await self._similar(exchange, policy):
                    return self._serve(exchange)
            except CacheUnavailableError as exc:
                self._unavailable("store", exc)
                return await self._bypass(exchange, next)
        return await self._miss(exchange, policy, next)

    # -- lookups -------------------------------------------------------------------------------

    async def _similar(self, exchange: Exchange, policy: Policy) -> bool:
        """The semantic lookup (after the exact one missed); on a hit the entry is on the
        exchange."""
        if self._semantic is None:
            return False
        key = policy.key
        try:
            match = await self._semantic.search(exchange.chat.body, key, exchange.model)
        except Exception as exc:  # the index or the embedding model: a bypass of the lookup
            self._unavailable("semantic", exc)
            return False
        if match is None:
            return False
        entry = await self._get(key.namespace, match.key, policy)
        if entry is None:
            return False
        exchange.headers["x-gateway-cache-similarity"] = f"{match.similarity:.4f}"
        self._found(exchange, entry, "semantic-hit")
        return True

    async def _get(self, namespace: str, digest: str, policy: Policy) -> Entry | None:
        data = await self._store.get(namespace, digest)
        return self._entry(namespace, digest, data, policy)

    def _entry(
        self, namespace: str, digest: str, data: bytes | None, policy: Policy
    ) -> Entry | None:
        """The stored bytes as an entry the request may use (None: none, too old, or bytes that
        are not an entry, which are dropped)."""
        if data is None:
            return None
        try:
            entry = Entry.decode(data)
        except BadEntryError:
            self._metrics.cache_errors.labels("undecodable").inc()
            self._background(self._store.delete(namespace, digest))
            return None
        if policy.max_age_s is not None and self._clock() - entry.created > policy.max_age_s:
            return None
        self._served_bytes.inc(len(data))
        return entry

    def _found(self, exchange: Exchange, entry: Entry, status: str) -> None:
        exchange.cache_entry = entry
        exchange.cache_status = status
        exchange.headers["x-gateway-cache"] = status
        exchange.headers["age"] = str(max(0, int(self._clock() - entry.created)))

    def _serve(self, exchange: Exchange) -> Outcome:
        """The entry as the answer: it costs nothing now; it saved what it cost then."""
        entry = exchange.cache_entry
        assert entry is not None
        self._counts[exchange.cache_status].inc()
        exchange.saved_tokens = entry.tokens
        exchange.saved_cost_usd = entry.cost_usd
        if exchange.stream:
            return replay(entry.as_chunks())
        return entry.as_answer()

    # -- misses --------------------------------------------------------------------------------

    async def _bypass(self, exchange: Exchange, next: Next) -> Outcome:
        exchange.cache_status = "bypass"
        exchange.headers["x-gateway-cache"] = "bypass"
        self._counts["bypass"].inc()
        return await next(exchange)

    async def _miss(self, exchange: Exchange, policy: Policy, next: Next) -> Outcome:
        """Join the key's flight: follow its leader's answer, or lead it (call the upstream)."""
        status = "miss" if policy.lookup else "refresh"
        exchange.cache_status = status
        exchange.headers["x-gateway-cache"] = status
        if not self._config.coalesce:
            return await self._call(exchange, policy, next, None)
        digest = policy.key.digest
        while True:
            flight, leading = self._flights.join(digest, stream=exchange.stream)
            if not leading:
                outcome = await self._follow(exchange, flight)
                if outcome is None:
                    continue  # the leader gave up before an answer: try again
                return outcome
            try:
                if (
                    self._config.coalesce_lock_s > 0
                    and policy.lookup  # a refresh wants a new answer, not the stored one
                    and await self._elsewhere(exchange, policy)
                ):
                    assert exchange.cache_entry is not None
                    flight.found(exchange.cache_entry)  # this instance's followers share it
                    self._flights.land(digest, flight)
                    return self._serve(exchange)
                return await self._call(exchange, policy, next, flight)
            except GatewayError as exc:
                self._unlock(exchange)  # another instance's request may call the upstream now
                flight.failed(exc)
                self._flights.land(digest, flight)
                raise
            except BaseException:
                self._unlock(exchange)
                flight.abandoned()
                self._flights.land(digest, flight)
                raise

    async def _elsewhere(self, exchange: Exchange, policy: Policy) -> bool:
        """With a lock time and a shared store: let another instance's identical request
        finish first, and serve its answer. True when that answer is on the exchange."""
        lock_s = self._config.coalesce_lock_s
        if lock_s <= 0:
            return False
        key = policy.key
        deadline = self._clock() + lock_s
        waited = False
        try:
            while True:
                if await self._store.try_lock(key.digest, lock_s):
                    exchange.cache_lock = key.digest  # released when the answer is stored
                # the lock's holder may have stored its answer and let go since the lookup
                entry = await self._get(key.namespace, key.digest, policy)
                if entry is not None:
                    self._unlock(exchange)
                    if waited:
                        exchange.headers["x-gateway-cache-coalesced"] = "true"
                    self._found(exchange, entry, "hit")
                    return True
                if exchange.cache_lock is not None:  # this request calls the upstream
                    return False
                if self._clock() >= deadline:
                    return False
                waited = True
                await asyncio.sleep(LOCK_POLL_S)
        except CacheUnavailableError as exc:
            self._unavailable("store", exc)
        return False

    async def _follow(self, exchange: Exchange, flight: Flight) -> Outcome | None:
        """The leader's answer; None when the leader gave up before it (try again)."""
        if exchange.stream and flight.stream:  # the chunks as they arrive
            exchange.cache_status = "hit"
            exchange.headers["x-gateway-cache"] = "hit"
            exchange.headers["x-gateway-cache-coalesced"] = "true"
            return self._followed(exchange, flight)
        await flight.wait()
        if flight.error is not None:
            raise flight.error
        if not flight.complete:
            return None
        entry = flight.entry(self._clock())
        if entry is None:
            return None
        exchange.headers["x-gateway-cache-coalesced"] = "true"
        self._found(exchange, entry, "hit")
        return self._serve(exchange)

    async def _followed(self, exchange: Exchange, flight: Flight) -> Chunks:
        self._counts["hit"].inc()
        try:
            async for chunk in flight.follow():
                yield chunk
        except FlightAbandoned:
            raise abandoned_error() from None
        exchange.saved_cost_usd, exchange.saved_tokens = flight.spent

    async def _call(
        self, exchange: Exchange, policy: Policy, next: Next, flight: Flight | None
    ) -> Outcome:
        self._counts[exchange.cache_status].inc()  # a miss or refresh: once per request
        outcome = await next(exchange)
        if isinstance(outcome, dict):
            answer = orjson.dumps(outcome)  # once, for the followers and the entry
            if flight is not None:
                flight.answered(answer, *_spent(exchange))
            entry = None
            if policy.store and is_complete(outcome):
                entry = encode_entry(self._clock(), answer, None, *_spent(exchange))
            self._keep(exchange, policy, entry, flight)
            return outcome
        return self._recorded(exchange, policy, outcome, flight)

    async def _recorded(
        self, exchange: Exchange, policy: Policy, chunks: Chunks, flight: Flight | None
    ) -> Chunks:
        """The stream, kept as it goes; stored when it completed."""
        kept: list[bytes] = []  # as they came, before the content rules outside this stage
        completed = finished = False
        try:
            async for chunk in chunks:
                data = orjson.dumps(chunk)
                kept.append(data)
                if flight is not None:
                    flight.chunk(data)
                finished = finished or stream_finished([chunk])
                yield chunk
            completed = True
        except GatewayError as exc:
            if flight is not None:
                flight.failed(exc)
            raise
        finally:
            if not completed and flight is not None and flight.followers and not flight.ended:
                completed = finished = await drain(chunks, kept, flight)  # followers still read
            await chunks.aclose()
            if flight is not None:
                if completed:
                    flight.finished(*_spent(exchange))
                else:
                    flight.abandoned()
            entry = None
            if completed and finished and policy.store:
                entry = encode_entry(self._clock(), None, kept, *_spent(exchange))
            self._keep(exchange, policy, entry, flight)

    def _keep(
        self, exchange: Exchange, policy: Policy, data: bytes | None, flight: Flight | None
    ) -> None:
        """Store the entry's bytes (None: nothing to store), then land the flight, so that a
        request arriving before the entry is stored still shares the flight's answer. The
        in-process store takes them at once; Redis and the semantic index are written in the
        background, without holding up the answer."""
        key = policy.key
        if data is None or len(data) > self._config.max_entry_bytes:
            self._unlock(exchange)
            if flight is not None:
                self._flights.land(key.digest, flight)
            return
        if self._memory is not None and not policy.semantic:
            self._memory.put(key.namespace, key.digest, data, policy.ttl_s)
            self._stored_bytes.inc(len(data))
            self._unlock(exchange)
            if flight is not None:
                self._flights.land(key.digest, flight)
            return
        self._writes.append((exchange, policy, data, flight))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_all())

    async def _write_all(self) -> None:
        try:
            while self._writes:
                await self._write(*self._writes.popleft())
        finally:
            self._writer = None

    async def _write(
        self, exchange: Exchange, policy: Policy, data: bytes, flight: Flight | None
    ) -> None:
        key = policy.key
        try:
            await self._store.set(key.namespace, key.digest, data, policy.ttl_s)
            self._stored_bytes.inc(len(data))
            if policy.semantic and self._semantic is not None:
                try:
                    await self._semantic.add(exchange.chat.body, key, exchange.model, policy.ttl_s)
                except Exception as exc:
                    self._unavailable("semantic", exc)
        except CacheUnavailableError as exc:
            self._unavailable("store", exc)
        finally:
            self._unlock(exchange)
            if flight is not None:
                self._flights.land(key.digest, flight)

    def _unlock(self, exchange: Exchange) -> None:
        name = exchange.cache_lock
        if name is not None:
            exchange.cache_lock = None
            self._background(self._store.unlock(name))

    def _background(self, work: Awaitable[object]) -> None:
        """A store call nobody waits for (a lock's release, a bad entry's removal)."""

        async def run() -> None:
            try:
                await work
            except CacheUnavailableError as exc:
                self._unavailable("store", exc)

        task = asyncio.ensure_future(run())
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def clear(self, namespace: str | None, digest: str | None) -> int:
        """Remove entries (`DELETE /admin/cache`); ServiceUnavailableError when the store does
        not answer."""
        try:
            deleted = await self._store.delete(namespace, digest)
        except CacheUnavailableError:
            raise ServiceUnavailableError(
                "The cache's store (Redis) did not answer; nothing was deleted. Retry shortly.",
                code="cache_unavailable",
            ) from None
        if namespace is None and digest is None and self._semantic is not None:
            await self._semantic.clear()
        return deleted

    async def aclose(self) -> None:
        """Finish the entries being stored (at shutdown)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)

    def _unavailable(self, kind: str, exc: BaseException) -> None:
        """Count a backend that did not answer; log it at most every LOG_EVERY_S."""
        self._metrics.cache_errors.labels(f"{kind}_unavailable").inc()
        now = time.monotonic()
        if now - self._last_logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_logged[kind] = now
            log.warning("cache_unavailable", part=kind, error=type(exc).__name__)


STATUSES = ("hit", "semantic-hit", "miss", "refresh", "bypass")
# An entry to store: the request, its policy, the entry's bytes, the flight to land after.
_Write = tuple[Exchange, Policy, bytes, "Flight | None"]


def _spent(exchange: Exchange) -> tuple[Decimal | None, int]:
    info = exchange.info
    return info.cost_usd, info.total_tokens
