"""The chains as the gateway serves them: their store (the prompt store's class on the chains'
tables), with a cache in front, as the prompt catalog does (prompts/catalog.py): a compiled
version is kept (it never changes; the most recently used `max_versions`), a chain's head (its
labels and newest version) for `head_ttl_s` at most, dropped at once when it changes here or on
another instance (`notify`, through prompts/invalidation.py on `<redis_prefix>:chains`).

Unknown chain, version or label: 404; a definition that cannot be used: 400; the store down:
503, unless a head read before is at hand.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ai_gateway.chains.definition import CompiledChain
from ai_gateway.errors import ConflictError, NotFoundError, ServiceUnavailableError
from ai_gateway.observability.logging import get_logger
from ai_gateway.prompts.records import DEFAULT_LABEL, PromptRecord, PromptVersion
from ai_gateway.prompts.render import sandbox
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.prompts import PromptExistsError, PromptStore, VersionMissingError

log = get_logger(__name__)
HEAD_TTL_S = 30.0
MAX_VERSIONS = 256


class ChainCatalog:
    def __init__(
        self,
        store: PromptStore,
        max_steps: int,
        *,
        notify: Callable[[str], Awaitable[None]] | None = None,
        head_ttl_s: float = HEAD_TTL_S,
        max_versions: int = MAX_VERSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_steps = max_steps
        self._notify = notify
        self._head_ttl_s = head_ttl_s
        self._max_versions = max_versions
        self._clock = clock
        self._env = sandbox()
        self._heads: dict[str, tuple[float, PromptRecord]] = {}
        self._versions: OrderedDict[tuple[str, int], CompiledChain] = OrderedDict()
        self._generation = 0

    async def resolve(
        self, chain_id: str, version: int | None = None, label: str | None = None
    ) -> CompiledChain:
        """`version`, else `label`'s, else the `production` label's when the chain has one,
        else its newest version."""
        if version is None:
            head = await self.head(chain_id)
            if label is not None:
                if label not in head.labels:
                    raise NotFoundError(
                        f"Chain {chain_id!r} has no label {label!r}; its labels: "
                        f"{', '.join(sorted(head.labels)) or '(none)'}.",
                        param="label",
                        code="chain_label_not_found",
                    )
                version = head.labels[label]
            else:
                version = head.labels.get(DEFAULT_LABEL, head.latest_version)
        key = (chain_id, version)
        found = self._versions.get(key)
        if found is not None:
            self._versions.move_to_end(key)
            return found
        compiled = CompiledChain(await self.version(chain_id, version), self._env, self.max_steps)
        self._versions[key] = compiled
        if len(self._versions) > self._max_versions:
            self._versions.popitem(last=False)
        return compiled

    async def head(self, chain_id: str) -> PromptRecord:
        cached = self._heads.get(chain_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self._head_ttl_s:
            return cached[1]
        generation = self._generation
        try:
            record = await self.store.get_prompt(chain_id)
        except StoreUnavailableError as exc:
            if cached is not None:
                log.warning("chain_store_unavailable_served_cached", error=str(exc)[:200])
                return cached[1]
            raise _unavailable() from None
        if record is None:
            raise _no_chain(chain_id)
        if generation == self._generation:
            self._heads[chain_id] = (now, record)
        return record

    async def current(self, chain_id: str) -> PromptRecord:
        self._heads.pop(chain_id, None)
        return await self.head(chain_id)

    async def version(self, chain_id: str, version: int) -> PromptVersion:
        try:
            found = await self.store.get_version(chain_id, version)
        except StoreUnavailableError:
            raise _unavailable() from None
        if found is None:
            await self.head(chain_id)  # 404 for the chain itself first
            raise NotFoundError(
                f"Chain {chain_id!r} has no version {version}.",
                param="version",
                code="chain_version_not_found",
            )
        return found

    def forget(self, chain_id: str | None) -> None:
        self._generation += 1
        if chain_id is None:
            self._heads.clear()
        else:
            self._heads.pop(chain_id, None)

    def check(self, definition: dict[str, Any], variables: dict[str, Any]) -> None:
        probe = PromptVersion("new", 0, definition, variables, datetime.now(UTC))
        CompiledChain(probe, self._env, self.max_steps)

    async def list(self) -> list[PromptRecord]:
        try:
            return await self.store.list_prompts()
        except StoreUnavailableError:
            raise _unavailable() from None

    async def create(
        self,
        chain_id: str,
        description: str | None,
        definition: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
    ) -> PromptRecord:
        self.check(definition, variables)
        try:
            record = await self.store.create_prompt(
                chain_id, description, definition, variables, note, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise _unavailable() from None
        except PromptExistsError:
            raise ConflictError(
                f"A chain {chain_id!r} exists already: add a version to it with "
                f"POST /v1/chains/{chain_id}/versions.",
                param="id",
                code="chain_exists",
            ) from None
        await self._changed(chain_id)
        return record

    async def add_version(
        self, chain_id: str, definition: dict[str, Any], variables: dict[str, Any], note: str | None
    ) -> PromptVersion:
        self.check(definition, variables)
        try:
            version = await self.store.add_version(
                chain_id, definition, variables, note, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise _unavailable() from None
        if version is None:
            raise _no_chain(chain_id)
        await self._changed(chain_id)
        return version

    async def set_label(self, chain_id: str, label: str, version: int) -> PromptRecord:
        try:
            record = await self.store.set_label(chain_id, label, version, datetime.now(UTC))
        except StoreUnavailableError:
            raise _unavailable() from None
        except VersionMissingError:
            raise NotFoundError(
                f"Chain {chain_id!r} has no version {version}.",
                param="version",
                code="chain_version_not_found",
            ) from None
        if record is None:
            raise _no_chain(chain_id)
        await self._changed(chain_id)
        return record

    async def _changed(self, chain_id: str) -> None:
        self.forget(chain_id)
        if self._notify is not None:
            await self._notify(chain_id)


def chain_view(record: PromptRecord) -> dict[str, Any]:
    return {**record.view(), "object": "chain"}


def version_view(version: PromptVersion) -> dict[str, Any]:
    return {
        "object": "chain.version",
        "id": version.prompt_id,
        "version": version.version,
        "steps": version.template.get("steps", []),
        "variables": version.variables,
        "note": version.note,
        "created_at": version.created_at.isoformat(),
    }


def _no_chain(chain_id: str) -> NotFoundError:
    return NotFoundError(
        f"No chain {chain_id!r}; list them with GET /v1/chains.",
        param="id",
        code="chain_not_found",
    )


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "The chain store is unavailable; retry shortly.", code="chain_store_unavailable"
    )
