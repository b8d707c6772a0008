"""One call of a hook: its time bound, the check of what it returned, the failure policy, the
metrics and the log line.

A hook's failure is an exception it raised, its timeout, a result its point does not take (or
that is not a result at all), or, for an HTTP hook, a failed call or a status other than 2xx.
`fail: open` goes on as if the hook had not run; `fail: closed` fails the request with 503
`hook_failed`. Either way the failure is counted (`ai_gateway_hook_failures_total`) and logged
with the hook's name. Nothing a hook does crashes or stalls the gateway beyond its timeout
(except an `inline` sync function, which nothing can interrupt: docs/hooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter
from types import MappingProxyType

import aiohttp
from prometheus_client import Counter, Histogram

from ai_gateway.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from ai_gateway.hooks.api import ALLOWED, Continue, HookContext, HookResult, Reject
from ai_gateway.hooks.config import POINTS, HookConfig, HookPoint
from ai_gateway.hooks.functions import BadStatus, HookFunction, MalformedResult
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import LATENCY_BUCKETS, Metrics
from ai_gateway.redaction import scrub
from ai_gateway.timers import cut

log = get_logger(__name__)

# The error a Reject becomes, by its status (its `code` is the hook's).
REJECTIONS: Mapping[int, type[GatewayError]] = MappingProxyType(
    {
        400: InvalidRequestError,
        401: AuthenticationError,
        402: BudgetExceededError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
        413: PayloadTooLargeError,
        429: RateLimitError,
    }
)


class HookMetrics:
    """Time per hook call and failures, on the app's registry."""

    def __init__(self, metrics: Metrics) -> None:
        self.seconds = Histogram(
            "ai_gateway_hook_seconds",
            "Time spent in each hook call, by hook name and point (failures included).",
            ("hook", "point"),
            buckets=LATENCY_BUCKETS,
            registry=metrics.registry,
        )
        self.failures = Counter(
            "ai_gateway_hook_failures_total",
            "Hook calls that failed, by hook, point, reason (error, timeout, malformed, status, "
            "unavailable) and policy (open, closed).",
            ("hook", "point", "reason", "policy"),
            registry=metrics.registry,
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, MalformedResult):
        return "malformed"
    if isinstance(exc, BadStatus):
        return "status"
    if isinstance(exc, aiohttp.ClientError):
        return "unavailable"
    return "error"


def check(point: HookPoint, result: object) -> HookResult | None:
    """`result` if the point takes it, else MalformedResult."""
    if result is None:
        return None
    if not isinstance(result, ALLOWED[point]):
        raise MalformedResult(f"{point} does not take {type(result).__name__!s:.60}")
    if isinstance(result, Continue) and not isinstance(result.body, dict | None):
        raise MalformedResult("Continue(body=...) is not a dict")
    if isinstance(result, Reject) and (
        result.status not in REJECTIONS
        or not isinstance(result.message, str)
        or not isinstance(result.code, str)
    ):
        raise MalformedResult(f"Reject: status must be one of {sorted(REJECTIONS)}")
    return result  # type: ignore[return-value]  # checked against the point's result types


def rejection(result: Reject) -> GatewayError:
    return REJECTIONS[result.status](result.message, code=result.code)


class Hook:
    """A configured hook: its function, bound by its timeout, under its failure policy."""

    def __init__(
        self,
        config: HookConfig,
        function: HookFunction,
        metrics: HookMetrics,
    ) -> None:
        self.name = config.name
        self.point: HookPoint = config.point
        self.models = frozenset(config.models)
        self.fail_closed = config.fail == "closed"
        self._config = config
        self._function = function
        # An inline sync function cannot be interrupted: it is not given a timeout it would
        # not keep.
        self._bounded = not (config.inline and not getattr(function, "is_async", True))
        self._timeout = config.timeout_s
        self._seconds = metrics.seconds.labels(self.name, self.point)
        self._failures = metrics.failures

    async def __call__(self, ctx: HookContext) -> HookResult | None:
        """What the hook returned, checked; None when it failed open. Raises the error of a
        `Reject`, or 503 `hook_failed` when it failed closed."""
        started = perf_counter()
        try:
            if self._bounded:
                raw = await cut(self._function(ctx), self._timeout)
            else:
                raw = await self._function(ctx)
            result = check(self.point, raw)
        except Exception as exc:
            self._seconds.observe(perf_counter() - started)
            self.failed(exc, ctx)
            return None
        self._seconds.observe(perf_counter() - started)
        if isinstance(result, Reject):
            raise rejection(result)
        return result

    def failed(self, exc: Exception, ctx: HookContext) -> None:
        """Count and log a failure of this call (also one the caller found in its result, e.g.
        a request that does not pass the schema); raise 503 `hook_failed` if it fails closed."""
        reason = _reason(exc)
        policy = "closed" if self.fail_closed else "open"
        self._failures.labels(self.name, self.point, reason, policy).inc()
        detail = f"{self._config.timeout_s} s" if reason == "timeout" else str(exc)
        log.warning(
            "hook_failed",
            hook=self.name,
            point=self.point,
            reason=reason,
            policy=policy,
            error_type=type(exc).__name__,
            detail=scrub(detail[:300]),
            request_id=ctx.request_id,
        )
        if self.fail_closed:
            raise ServiceUnavailableError(
                f"The gateway's hook {self.name!r} ({self.point}) failed ({reason}), and it is "
                f"configured to fail closed; quote request id {ctx.request_id} to report it.",
                code="hook_failed",
            ) from None


class HookSet:
    """The configured hooks by point, in the order the config lists them, and those that run
    for a model (hooks with a `models` filter run only for those public names)."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self._by_point: dict[str, tuple[Hook, ...]] = {
            point: tuple(h for h in hooks if h.point == point) for point in POINTS
        }
        self._filtered = any(h.models for h in hooks)
        self._for_model: dict[tuple[str, str], tuple[Hook, ...]] = {}

    def __bool__(self) -> bool:
        return any(self._by_point.values())

    def at(self, point: HookPoint, model: str) -> tuple[Hook, ...]:
        hooks = self._by_point[point]
        if not self._filtered or not hooks:
            return hooks
        key = (point, model)
        found = self._for_model.get(key)
        if found is None:
            found = tuple(h for h in hooks if not h.models or model in h.models)
            if len(self._for_model) < 10_000:  # bounded: model names come from requests
                self._for_model[key] = found
        return found
