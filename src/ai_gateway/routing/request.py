"""What the router is asked to do for one request, and what it did (its trace)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ai_gateway.routing.config import ContextStrategy
from ai_gateway.routing.deployments import Deployment

T = TypeVar("T")
JSONObject = dict[str, Any]
Call = Callable[[Deployment, JSONObject], Awaitable[T]]


@dataclass(slots=True)
class Trace:
    """What the router did for one request (response headers, logs)."""

    requested: str
    served_by: Deployment | None = None
    last_tried: Deployment | None = None  # the deployment of the latest attempt
    attempts: int = 0
    fallbacks: list[str] = field(default_factory=list)
    hedged: bool = False
    truncated_messages: int = 0


@dataclass(frozen=True, slots=True)
class RouteRequest(Generic[T]):
    model: str
    body: JSONObject
    call: Call[T]
    context_strategy: ContextStrategy | None = None
    stream: bool = False
    discard: Callable[[T], Awaitable[None]] | None = None  # closes a result nobody will use
    tokens_of: Callable[[T], int | None] | None = None  # reported usage, to correct tpm counts
    # Asked before the request moves to another name (a fallback of any kind): True when the
    # caller may use it (allowed models) and its limits admit the request; a name refused is
    # skipped. None: every name may be used. The requested name was admitted before routing.
    reach: Callable[[str], Awaitable[bool]] | None = None
