"""The request's facts: one `RequestInfo` per request, filled in by the middleware, the handlers,
the pipeline and the features (admission, usage recording), and read at the end by metrics, logs
and the server span.

It is in the features layer (below the pipeline, so that `security/` and `usage/` may read it)
because it names routing's `Trace` and security's `Principal`; observability reads it through
the `RequestFacts` protocol (observability/tracing.py) and does not import it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from time import perf_counter
from typing import TYPE_CHECKING, Any

# May the request move to this model name (a fallback)? The caller's allowed models and the
# model's limits; see pipeline/admit.py.
Reach = Callable[[str], Awaitable[bool]]

if TYPE_CHECKING:
    from ai_gateway.routing.request import Trace
    from ai_gateway.security.principal import Principal


@dataclass(slots=True)
class RequestInfo:
    """Filled in as the request moves through the stages; read by metrics and logs at the end."""

    request_id: str  # the gateway's own, unique (x-gateway-request-id): the usage record's key
    started: float = field(default_factory=perf_counter)
    model: str = ""
    provider: str = ""
    deployment: str = ""
    upstream_label: str = ""
    trace: Trace | None = None  # what the router did (attempts, fallbacks, the deployment used)
    cost_usd: Decimal | None = None  # known when the answer is complete
    principal: Principal | None = None  # who is calling (None: authentication is off)
    client_ip: str | None = None  # set with the principal, for the audit log
    total_tokens: int = 0  # prompt + completion tokens (reported, or counted for a cut stream)
    client_request_id: str | None = None  # the client's x-request-id, kept for correlation
    priced_only: bool = False  # a budget applies: only models with a price may be called
    metered: bool = False  # a budget or token limit applies: a cut stream must be counted
    reach: Reach | None = None  # asked before moving to a fallback (set at admission)
    prompt_id: str | None = None  # the prompt template the request was rendered from
    prompt_version: int | None = None

    @classmethod
    def from_scope(cls, scope: MutableMapping[str, Any]) -> RequestInfo:
        info = scope.get("ai_gateway.info")
        if isinstance(info, RequestInfo):
            return info
        info = cls(request_id="")
        scope["ai_gateway.info"] = info
        return info
