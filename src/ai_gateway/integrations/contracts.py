"""What the gateway asks of the DevMentor Memory, Project and Learning services, and what it
accepts back: the JSON contracts of docs/integrations.md as typed models.

Requests are built by the gateway (`extra="forbid"`: a typo is a bug). Responses are read
leniently where it is harmless: unknown fields are ignored, so a service can add fields without
breaking older gateways; a missing or mistyped field makes the whole answer `bad_response`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 100_000  # characters of one memory, summary or snippet


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- Memory service (3003) -----------------------------------------------------------------------


class MemorySearchRequest(_Request):
    """`POST /v1/memories/search`."""

    user_id: str = Field(min_length=1)
    query: str
    limit: int = Field(ge=1, le=100)


class Memory(_Response):
    id: str
    text: str = Field(max_length=MAX_TEXT)
    score: float = Field(ge=0, le=1)
    created_at: datetime


class MemorySearchResponse(_Response):
    """The user's memories most relevant to the query, best first, and a summary of their
    recent conversation (None when there is none)."""

    memories: tuple[Memory, ...]
    summary: str | None = Field(default=None, max_length=MAX_TEXT)


class ExchangeMessage(_Request):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class StoreExchangeRequest(_Request):
    """`POST /v1/exchanges`: a finished exchange, for the service to remember."""

    user_id: str = Field(min_length=1)
    request_id: str = Field(min_length=1)
    project_id: str | None = None
    messages: tuple[ExchangeMessage, ...] = Field(min_length=1)
    answer: str


class StoreExchangeResponse(_Response):
    id: str


# -- Project service (3004) ----------------------------------------------------------------------


class ProjectContextRequest(_Request):
    """`POST /v1/projects/{project_id}/context`. `user_id`: on whose behalf (the service answers
    403 when that user may not see the project)."""

    user_id: str = Field(min_length=1)
    query: str
    limit: int = Field(ge=1, le=100)


class Project(_Response):
    id: str
    name: str
    description: str = Field(default="", max_length=MAX_TEXT)
    languages: tuple[str, ...] = ()


class Snippet(_Response):
    path: str
    content: str = Field(max_length=MAX_TEXT)
    score: float = Field(ge=0, le=1)
    start_line: int | None = Field(default=None, ge=1)


class ProjectContextResponse(_Response):
    """The project's metadata and the snippets of its files most relevant to the query."""

    project: Project
    snippets: tuple[Snippet, ...]


# -- Learning engine (3005) ----------------------------------------------------------------------

Level = Literal["beginner", "intermediate", "advanced"]


class LearnerPreferences(_Response):
    explanation_style: Literal["concise", "detailed", "socratic"] = "detailed"
    languages: tuple[str, ...] = ()
    code_examples: bool = True


class LearnerProfile(_Response):
    """`GET /v1/learners/{user_id}/profile`."""

    level: Level
    goals: tuple[str, ...] = ()
    preferences: LearnerPreferences = LearnerPreferences()
