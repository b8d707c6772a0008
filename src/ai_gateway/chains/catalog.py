"""The chains as the gateway serves them: the versioned catalog (prompts/versioned.py) on the
chains' store (the prompt store's class on the chains' tables) with the chain's compiler: a
compiled version is kept (it never changes; the most recently used `max_versions`), a chain's head
(its labels and newest version) for `head_ttl_s` at most, dropped at once when it changes here or
on another instance (`notify`, through prompts/invalidation.py on `<redis_prefix>:chains`).

Unknown chain, version or label: 404; a definition that cannot be used: 400; the store down:
503, unless a head read before is at hand.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ai_gateway.chains.definition import CompiledChain
from ai_gateway.prompts.records import PromptRecord, PromptVersion
from ai_gateway.prompts.render import sandbox
from ai_gateway.prompts.versioned import HEAD_TTL_S, Naming, VersionedCatalog
from ai_gateway.stores.prompts import PromptStore

MAX_VERSIONS = 256
NAMING = Naming(noun="chain", kind="chain", route="/v1/chains", param="")


class ChainCatalog(VersionedCatalog[CompiledChain]):
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
        env = sandbox()
        self.max_steps = max_steps
        super().__init__(
            store,
            NAMING,
            lambda version: CompiledChain(version, env, max_steps),
            notify=notify,
            head_ttl_s=head_ttl_s,
            max_versions=max_versions,
            clock=clock,
        )


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
