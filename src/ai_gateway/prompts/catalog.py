"""The prompt templates as the gateway serves them: the store, with a cache in front.

A version never changes, so a compiled version is kept (the most recently used `max_versions`)
until the process ends. A template's head (its labels and newest version) moves: it is kept for
`head_ttl_s` at most, and dropped at once when it changes, here or on another instance (through
`notify`, prompts/invalidation.py). A head read from the store while a change was announced is
not kept (it may be the old one).

Errors are the gateway's: an unknown template, version or label is 404; a template or variables
that do not render is 400 (`PromptError`); a store that does not answer is 503, unless a head
read before is at hand (kept past its lifetime for that).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ai_gateway.errors import ConflictError, NotFoundError, ServiceUnavailableError
from ai_gateway.observability.logging import get_logger
from ai_gateway.prompts.records import DEFAULT_LABEL, PromptRecord, PromptVersion
from ai_gateway.prompts.render import CompiledPrompt, sandbox
from ai_gateway.prompts.spec import check_template
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.prompts import PromptExistsError, PromptStore, VersionMissingError

log = get_logger(__name__)
HEAD_TTL_S = 30.0
MAX_VERSIONS = 1024


class PromptCatalog:
    def __init__(
        self,
        store: PromptStore,
        *,
        notify: Callable[[str], Awaitable[None]] | None = None,
        head_ttl_s: float = HEAD_TTL_S,
        max_versions: int = MAX_VERSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._notify = notify
        self._head_ttl_s = head_ttl_s
        self._max_versions = max_versions
        self._clock = clock
        self._env = sandbox()
        self._heads: dict[str, tuple[float, PromptRecord]] = {}
        self._versions: OrderedDict[tuple[str, int], CompiledPrompt] = OrderedDict()
        self._generation = 0  # moves on every change announced

    # -- serving -------------------------------------------------------------------------------

    async def resolve(
        self, prompt_id: str, version: int | None = None, label: str | None = None
    ) -> CompiledPrompt:
        """The compiled version a request names: `version`, else `label`'s, else the
        `production` label's when the template has one, else its newest version."""
        if version is None:
            head = await self.head(prompt_id)
            if label is not None:
                if label not in head.labels:
                    raise NotFoundError(
                        f"Prompt template {prompt_id!r} has no label {label!r}; its labels: "
                        f"{', '.join(sorted(head.labels)) or '(none)'}.",
                        param="prompt.label",
                        code="prompt_label_not_found",
                    )
                version = head.labels[label]
            else:
                version = head.labels.get(DEFAULT_LABEL, head.latest_version)
        return await self.compiled(prompt_id, version)

    async def head(self, prompt_id: str) -> PromptRecord:
        cached = self._heads.get(prompt_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self._head_ttl_s:
            return cached[1]
        generation = self._generation
        try:
            record = await self.store.get_prompt(prompt_id)
        except StoreUnavailableError as exc:
            if cached is not None:  # the last known head beats an error
                log.warning("prompt_store_unavailable_served_cached", error=str(exc)[:200])
                return cached[1]
            raise _unavailable() from None
        if record is None:
            raise _no_prompt(prompt_id)
        if generation == self._generation:
            self._heads[prompt_id] = (now, record)
        return record

    async def current(self, prompt_id: str) -> PromptRecord:
        """The head as the store has it now (for the admin API), kept for requests too."""
        self._heads.pop(prompt_id, None)
        return await self.head(prompt_id)

    async def compiled(self, prompt_id: str, version: int) -> CompiledPrompt:
        key = (prompt_id, version)
        found = self._versions.get(key)
        if found is not None:
            self._versions.move_to_end(key)
            return found
        compiled = CompiledPrompt(await self.version(prompt_id, version), self._env)
        self._versions[key] = compiled
        if len(self._versions) > self._max_versions:
            self._versions.popitem(last=False)
        return compiled

    async def version(self, prompt_id: str, version: int) -> PromptVersion:
        try:
            found = await self.store.get_version(prompt_id, version)
        except StoreUnavailableError:
            raise _unavailable() from None
        if found is None:
            await self.head(prompt_id)  # 404 for the template itself first
            raise NotFoundError(
                f"Prompt template {prompt_id!r} has no version {version}.",
                param="prompt.version",
                code="prompt_version_not_found",
            )
        return found

    def forget(self, prompt_id: str | None) -> None:
        """Drop a template's cached head (None: every one). Versions never change."""
        self._generation += 1
        if prompt_id is None:
            self._heads.clear()
        else:
            self._heads.pop(prompt_id, None)

    # -- administration ------------------------------------------------------------------------

    def check(self, template: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
        """The template as it will be stored; PromptError (400) when it cannot be used."""
        template = check_template(template)
        probe = PromptVersion("new", 0, template, variables, datetime.now(UTC))
        CompiledPrompt(probe, self._env)  # syntax and schema errors now, not at request time
        return template

    async def list(self) -> list[PromptRecord]:
        try:
            return await self.store.list_prompts()
        except StoreUnavailableError:
            raise _unavailable() from None

    async def create(
        self,
        prompt_id: str,
        description: str | None,
        template: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
    ) -> PromptRecord:
        template = self.check(template, variables)
        try:
            record = await self.store.create_prompt(
                prompt_id, description, template, variables, note, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise _unavailable() from None
        except PromptExistsError:
            raise ConflictError(
                f"A prompt template {prompt_id!r} exists already: add a version to it with "
                f"POST /v1/prompts/{prompt_id}/versions.",
                param="id",
                code="prompt_exists",
            ) from None
        await self._changed(prompt_id)
        return record

    async def add_version(
        self, prompt_id: str, template: dict[str, Any], variables: dict[str, Any], note: str | None
    ) -> PromptVersion:
        template = self.check(template, variables)
        try:
            version = await self.store.add_version(
                prompt_id, template, variables, note, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise _unavailable() from None
        if version is None:
            raise _no_prompt(prompt_id)
        await self._changed(prompt_id)
        return version

    async def set_label(self, prompt_id: str, label: str, version: int) -> PromptRecord:
        try:
            record = await self.store.set_label(prompt_id, label, version, datetime.now(UTC))
        except StoreUnavailableError:
            raise _unavailable() from None
        except VersionMissingError:
            raise NotFoundError(
                f"Prompt template {prompt_id!r} has no version {version}.",
                param="version",
                code="prompt_version_not_found",
            ) from None
        if record is None:
            raise _no_prompt(prompt_id)
        await self._changed(prompt_id)
        return record

    async def _changed(self, prompt_id: str) -> None:
        self.forget(prompt_id)
        if self._notify is not None:
            await self._notify(prompt_id)


def _no_prompt(prompt_id: str) -> NotFoundError:
    return NotFoundError(
        f"No prompt template {prompt_id!r}; list them with GET /v1/prompts.",
        param="prompt.id",
        code="prompt_not_found",
    )


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "The prompt template store is unavailable; retry shortly.", code="prompt_store_unavailable"
    )
