"""The prompt store's interface: templates, their immutable versions and their labels.

It lives in the analytics database (same SQLite file, or same PostgreSQL schema) and shares its
migration history (migration 6); `ai_gateway.stores.factory.open_prompt_store(settings)` picks
the backend. "The database is down" raises `StoreUnavailableError`, as the other stores do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from ai_gateway.prompts.records import PromptRecord, PromptVersion


class PromptExistsError(Exception):
    def __init__(self, prompt_id: str) -> None:
        super().__init__(f"a prompt template with id {prompt_id!r} already exists")
        self.prompt_id = prompt_id


class VersionMissingError(Exception):
    """A label was pointed at a version the template does not have."""

    def __init__(self, prompt_id: str, version: int) -> None:
        super().__init__(f"prompt template {prompt_id!r} has no version {version}")
        self.prompt_id = prompt_id
        self.version = version


class PromptStore(Protocol):
    async def start(self) -> None:
        """Connect and apply pending migrations (StoreUnavailableError when it cannot)."""
        ...

    async def aclose(self) -> None: ...

    async def create_prompt(
        self,
        prompt_id: str,
        description: str | None,
        template: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
        at: datetime,
    ) -> PromptRecord:
        """A new template with its version 1; PromptExistsError when the id is taken."""
        ...

    async def add_version(
        self,
        prompt_id: str,
        template: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
        at: datetime,
    ) -> PromptVersion | None:
        """The next version (numbered in the database: concurrent adds get distinct numbers);
        None when there is no such template."""
        ...

    async def get_prompt(self, prompt_id: str) -> PromptRecord | None: ...

    async def list_prompts(self) -> list[PromptRecord]:
        """Every template, by id."""
        ...

    async def get_version(self, prompt_id: str, version: int) -> PromptVersion | None: ...

    async def set_label(
        self, prompt_id: str, label: str, version: int, at: datetime
    ) -> PromptRecord | None:
        """Point `label` at `version` (creating or moving it); None when there is no such
        template, VersionMissingError when it has no such version."""
        ...
