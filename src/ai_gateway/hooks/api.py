"""The contract a Python hook is written against (docs/hooks.md):

    async def pre_request(ctx: HookContext) -> HookResult | None      # or a plain `def`

`ctx` carries what the hook's point has: the request body, the answer, a chunk, or the usage
record. The hook returns None (go on unchanged) or one of the results below; which results a
point takes is in `ALLOWED`. Anything else is a malformed result: a failure of the hook, handled
by its `fail` policy. The dicts in `ctx` are the gateway's own: read them, and return a changed
copy in `Continue(body=...)` rather than changing them in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ai_gateway.hooks.config import HookPoint
from ai_gateway.usage.records import UsageRecord


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the request (no credentials): `kind` is master, key, jwt or anonymous."""

    kind: str = "anonymous"
    user: str | None = None
    team: str | None = None
    key_id: str | None = None


@dataclass(slots=True)  # not frozen: built for every call, and a frozen one costs several times
class HookContext:
    """What a hook sees. `body`: the request (pre_request), the answer (post_response) or the
    chunk (on_chunk); `request`: the request body at the later points; `record`: the finished
    request's usage record (on_record, where `body` is empty)."""

    hook: str  # the hook's name in the config
    point: HookPoint
    request_id: str
    endpoint: str  # chat or embeddings
    model: str  # the public model name the request calls
    stream: bool
    caller: Caller
    body: dict[str, Any]
    request: dict[str, Any] | None = None
    record: UsageRecord | None = None


@dataclass(frozen=True, slots=True)
class Continue:
    """Go on, with `body` (when given) in place of the request, the answer or the chunk. A new
    request must keep the model and pass the request schema."""

    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse with an OpenAI-style error: `status` one of REJECT_STATUSES."""

    message: str
    status: int = 400
    code: str = "rejected_by_hook"


@dataclass(frozen=True, slots=True)
class Respond:
    """pre_request: answer the request directly with this `chat.completion` (a streamed request
    gets it as chunks); the upstream is not called."""

    answer: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Drop:
    """on_chunk: leave this chunk out of the stream."""


HookResult = Continue | Reject | Respond | Drop

REJECT_STATUSES = (400, 401, 402, 403, 404, 409, 413, 429)

ALLOWED: MappingProxyType[HookPoint, tuple[type, ...]] = MappingProxyType(
    {
        "pre_request": (Continue, Reject, Respond),
        "post_response": (Continue, Reject),
        "on_chunk": (Continue, Reject, Drop),
        "on_record": (Continue,),
    }
)
