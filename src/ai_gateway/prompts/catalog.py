"""The prompt templates as the gateway serves them: the versioned catalog (prompts/versioned.py:
the store, with a cache in front) with the template's compiler and check.

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
from collections.abc import Awaitable, Callable
from typing import Any

from ai_gateway.prompts.render import CompiledPrompt, sandbox
from ai_gateway.prompts.spec import check_template
from ai_gateway.prompts.versioned import HEAD_TTL_S, Naming, VersionedCatalog
from ai_gateway.stores.prompts import PromptStore

MAX_VERSIONS = 1024

NAMING = Naming(noun="prompt template", kind="prompt", route="/v1/prompts", param="prompt.")


class PromptCatalog(VersionedCatalog[CompiledPrompt]):
    def __init__(
        self,
        store: PromptStore,
        *,
        notify: Callable[[str], Awaitable[None]] | None = None,
        head_ttl_s: float = HEAD_TTL_S,
        max_versions: int = MAX_VERSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = sandbox()
        super().__init__(
            store,
            NAMING,
            lambda version: CompiledPrompt(version, env),
            notify=notify,
            head_ttl_s=head_ttl_s,
            max_versions=max_versions,
            clock=clock,
        )

    def check(self, template: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
        """The template as it will be stored; PromptError (400) when it cannot be used."""
        return super().check(check_template(template), variables)
