"""A catalog of versioned documents (prompt templates, chains) as the gateway serves them: the
store, with a cache in front. `prompts/catalog.py` and `chains/catalog.py` are this catalog with
their own compiler, check and names.

A version never changes, so a compiled version is kept (the most recently used `max_versions`)
until the process ends. A document's head (its labels and newest version) moves: it is kept for
`head_ttl_s` at most, and dropped at once when it changes, here or on another instance (through
`notify`, prompts/invalidation.py). A head read from the store while a change was announced is
not kept (it may be the old one).

Errors are the gateway's: an unknown document, version or label is 404; one that cannot be used
is 400 (from the compiler or the check); a store that does not answer is 503, unless a head read
before is at hand (kept past its lifetime for that).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from ai_gateway.errors import ConflictError, NotFoundError, ServiceUnavailableError
from ai_gateway.observability.logging import get_logger
from ai_gateway.prompts.records import DEFAULT_LABEL, PromptRecord, PromptVersion
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.prompts import PromptExistsError, PromptStore, VersionMissingError

log = get_logger(__name__)
HEAD_TTL_S = 30.0
C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Naming:
    """How a catalog's errors name what it holds."""

    noun: str  # "prompt template"
    kind: str  # "prompt": error codes (`prompt_not_found`) and log events
    route: str  # "/v1/prompts": where to list them
    param: str  # "prompt.": the prefix of a request's field that names one ("" for a route's)


class VersionedCatalog(Generic[C]):
    def __init__(
        self,
        store: PromptStore,
        naming: Naming,
        compile: Callable[[PromptVersion], C],
        *,
        notify: Callable[[str], Awaitable[None]] | None = None,
        head_ttl_s: float = HEAD_TTL_S,
        max_versions: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._naming = naming
        self._compile = compile
        self._notify = notify
        self._head_ttl_s = head_ttl_s
        self._max_versions = max_versions
        self._clock = clock
        self._heads: dict[str, tuple[float, PromptRecord]] = {}
        self._versions: OrderedDict[tuple[str, int], C] = OrderedDict()
        self._generation = 0  # moves on every change announced

    # -- serving -------------------------------------------------------------------------------

    async def resolve(self, doc_id: str, version: int | None = None, label: str | None = None) -> C:
        """The compiled version a request names: `version`, else `label`'s, else the
        `production` label's when the document has one, else its newest version."""
        if version is None:
            head = await self.head(doc_id)
            version = _chosen(head, label)
            if version is None:
                raise NotFoundError(
                    f"{self._title} {doc_id!r} has no label {label!r}; its labels: "
                    f"{', '.join(sorted(head.labels)) or '(none)'}.",
                    param=f"{self._naming.param}label",
                    code=f"{self._naming.kind}_label_not_found",
                )
        return await self.compiled(doc_id, version)

    def cached(self, doc_id: str, version: int | None = None, label: str | None = None) -> C | None:
        """What `resolve` would return, when it is known here without a store call (a version
        compiled before, and for a label or the default a head younger than its TTL); None
        otherwise (then `resolve`)."""
        if version is None:
            cached = self._heads.get(doc_id)
            if cached is None or self._clock() - cached[0] >= self._head_ttl_s:
                return None
            version = _chosen(cached[1], label)
            if version is None:
                return None  # resolve raises the 404
        found = self._versions.get((doc_id, version))
        if found is not None:
            self._versions.move_to_end((doc_id, version))
        return found

    async def head(self, doc_id: str) -> PromptRecord:
        cached = self._heads.get(doc_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self._head_ttl_s:
            return cached[1]
        generation = self._generation
        try:
            record = await self.store.get_prompt(doc_id)
        except StoreUnavailableError as exc:
            if cached is not None:  # the last known head beats an error
                event = f"{self._naming.kind}_store_unavailable_served_cached"
                log.warning(event, error=str(exc)[:200])
                return cached[1]
            raise self._unavailable() from None
        if record is None:
            raise self._missing(doc_id)
        if generation == self._generation:
            self._heads[doc_id] = (now, record)
        return record

    async def current(self, doc_id: str) -> PromptRecord:
        """The head as the store has it now (for the admin API), kept for requests too."""
        self._heads.pop(doc_id, None)
        return await self.head(doc_id)

    async def compiled(self, doc_id: str, version: int) -> C:
        key = (doc_id, version)
        found = self._versions.get(key)
        if found is not None:
            self._versions.move_to_end(key)
            return found
        compiled = self._compile(await self.version(doc_id, version))
        self._versions[key] = compiled
        if len(self._versions) > self._max_versions:
            self._versions.popitem(last=False)
        return compiled

    async def version(self, doc_id: str, version: int) -> PromptVersion:
        try:
            found = await self.store.get_version(doc_id, version)
        except StoreUnavailableError:
            raise self._unavailable() from None
        if found is None:
            await self.head(doc_id)  # 404 for the document itself first
            raise self._no_version(doc_id, version, f"{self._naming.param}version")
        return found

    def forget(self, doc_id: str | None) -> None:
        """Drop a document's cached head (None: every one). Versions never change."""
        self._generation += 1
        if doc_id is None:
            self._heads.clear()
        else:
            self._heads.pop(doc_id, None)

    # -- administration ------------------------------------------------------------------------

    def check(self, document: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
        """The document as it will be stored: compiled once now, so that what cannot be used is
        refused (400) when it is stored, not when a request uses it."""
        self._compile(PromptVersion("new", 0, document, variables, datetime.now(UTC)))
        return document

    async def list(self) -> list[PromptRecord]:
        try:
            return await self.store.list_prompts()
        except StoreUnavailableError:
            raise self._unavailable() from None

    async def create(
        self,
        doc_id: str,
        description: str | None,
        document: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
    ) -> PromptRecord:
        document = self.check(document, variables)
        try:
            record = await self.store.create_prompt(
                doc_id, description, document, variables, note, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise self._unavailable() from None
        except PromptExistsError:
            raise ConflictError(
                f"A {self._naming.noun} {doc_id!r} exists already: add a version to it with "
                f"POST {self._naming.route}/{doc_id}/versions.",
                param="id",
                code=f"{self._naming.kind}_exists",
            ) from None
        await self._changed(doc_id)
        return record

    async def add_version(
        self, doc_id: str, document: dict[str, Any], variables: dict[str, Any], note: str | None
    ) -> PromptVersion:
        document = self.check(document, variables)
        try:
            version = await self.store.add_version(
                doc_id, document, variables, note, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise self._unavailable() from None
        if version is None:
            raise self._missing(doc_id)
        await self._changed(doc_id)
        return version

    async def set_label(self, doc_id: str, label: str, version: int) -> PromptRecord:
        try:
            record = await self.store.set_label(doc_id, label, version, datetime.now(UTC))
        except StoreUnavailableError:
            raise self._unavailable() from None
        except VersionMissingError:
            raise self._no_version(doc_id, version, "version") from None
        if record is None:
            raise self._missing(doc_id)
        await self._changed(doc_id)
        return record

    async def _changed(self, doc_id: str) -> None:
        self.forget(doc_id)
        if self._notify is not None:
            await self._notify(doc_id)

    # -- errors --------------------------------------------------------------------------------

    @property
    def _title(self) -> str:
        return self._naming.noun[0].upper() + self._naming.noun[1:]

    def _missing(self, doc_id: str) -> NotFoundError:
        naming = self._naming
        return NotFoundError(
            f"No {naming.noun} {doc_id!r}; list them with GET {naming.route}.",
            param=f"{naming.param}id",
            code=f"{naming.kind}_not_found",
        )

    def _no_version(self, doc_id: str, version: int, param: str) -> NotFoundError:
        return NotFoundError(
            f"{self._title} {doc_id!r} has no version {version}.",
            param=param,
            code=f"{self._naming.kind}_version_not_found",
        )

    def _unavailable(self) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"The {self._naming.noun} store is unavailable; retry shortly.",
            code=f"{self._naming.kind}_store_unavailable",
        )


def _chosen(head: PromptRecord, label: str | None) -> int | None:
    """The version a request without one gets: `label`'s (None: no such label), else the
    `production` label's when there is one, else the newest."""
    if label is not None:
        return head.labels.get(label)
    return head.labels.get(DEFAULT_LABEL, head.latest_version)
