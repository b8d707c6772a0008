"""The admission stage: before, the models the caller's key allows (403), then its rate limits
and budgets and each called model's limits (security/admission.py: 429, 402, 403, 503); after,
the request is settled: its concurrency leases released, its tokens and cost charged (a stream:
when it ends, however it ends).

A request calls every model of a fan-out, so all of them are admitted here, once. Admission also
sets `info.reach`, which the router asks before it moves the request to another name (a
fallback): the caller must be allowed that name, and its limits must admit one more request
(taken into the same ticket, so settled with it). Nothing is awaited when no limit or budget can
apply to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ai_gateway.errors import PermissionDeniedError, RateLimitError, ServiceUnavailableError
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.charges import Charges
from ai_gateway.pipeline.exchange import Chunks, Exchange, Outcome
from ai_gateway.request_info import Reach, RequestInfo
from ai_gateway.security.admission import Admission
from ai_gateway.security.principal import Principal
from ai_gateway.security.tickets import Ticket


class Admit:
    def __init__(self, admission: Admission, charges: Charges) -> None:
        self._admission = admission
        self._charges = charges
        self._settling: set[asyncio.Future[None]] = set()  # charges of streams being settled

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        info = exchange.info
        models = exchange.models
        allowed(models, info.principal)
        if not self._admission.may_apply(info.principal, models):
            return await next(exchange)
        body = exchange.request.body
        ticket = await self._admission.admit(
            info.principal, models, info, lambda: self._charges.max_cost(models, body)
        )
        info.reach = self._reach(ticket, info)
        if ticket is None:
            return await next(exchange)
        try:
            outcome = await next(exchange)
        except BaseException:
            await self._admission.settle(ticket, info)
            raise
        exchange.headers.update(ticket.headers)
        if isinstance(outcome, dict):
            await self._admission.settle(ticket, info)
            return outcome
        return self._settle_after(outcome, ticket, info)

    def _reach(self, ticket: Ticket | None, info: RequestInfo) -> Reach | None:
        """May the request move to model `name`? None when nothing could refuse a name."""
        principal = info.principal
        allows = principal.model_filter if principal is not None else None
        if allows is None and ticket is None:
            return None
        admission = self._admission

        async def reach(name: str) -> bool:
            if allows is not None and not allows(name):
                return False
            if ticket is not None:
                try:
                    await admission.admit_model(ticket, name, info)
                except (RateLimitError, ServiceUnavailableError):
                    return False
            return True

        return reach

    async def _settle_after(self, chunks: Chunks, ticket: Ticket, info: RequestInfo) -> Chunks:
        """`chunks`, with the request settled when they end. The inner stages are closed first,
        so that what the stream used is known; the charge runs in a task of its own, which the
        request's cancellation does not interrupt."""
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            try:
                await chunks.aclose()
            finally:
                settling = asyncio.ensure_future(self._admission.settle(ticket, info))
                self._settling.add(settling)
                settling.add_done_callback(self._settling.discard)
                await asyncio.shield(settling)


def allowed(models: Sequence[str], principal: Principal | None) -> None:
    """403 when the caller's key does not allow one of `models`. The names a request may move
    to (fallbacks) pass the same filter (`Principal.model_filter`, in `reach`) and are skipped
    rather than refused."""
    key = principal.key if principal is not None else None
    if key is None or not key.models:
        return
    for model in models:
        if not key.allows_model(model):
            raise PermissionDeniedError(
                f"This API key may not use model {model!r}; it is allowed: "
                f"{', '.join(key.models)}.",
                param="model",
                code="model_not_allowed",
            )
