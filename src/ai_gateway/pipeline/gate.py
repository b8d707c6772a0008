"""The stages between authentication and routing, and their counterparts when a request ends:

    validate          request limits (messages, sizes, max_tokens, nesting), allowed models
 -> rate-limit/budget (security/admission.py)
 -> guardrails(in)    content rules on the prompt: block (400), redact, flag
    ... route, call the provider, stream or respond (pipeline/chat.py) ...
 -> guardrails(out)   the same rules on the answer (streams: chunk by chunk, see ChunkGuard)
 -> settle            release concurrency leases, charge tokens and cost

Each stage costs nothing when nothing is configured for the caller and model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from ai_gateway.errors import (
    GuardrailBlockedError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.request_info import Reach, RequestInfo
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.security.admission import Admission, Ticket
from ai_gateway.security.audit import CONTENT_BLOCKED, CONTENT_FLAGGED, AuditRecord, Outcome
from ai_gateway.security.config import GuardrailsConfig, RequestLimits
from ai_gateway.security.guardrails import Finding, Guardrails, StreamFilter
from ai_gateway.security.guardrails_fields import text_size
from ai_gateway.security.principal import Principal
from ai_gateway.security.request_limits import check_chat, check_embeddings

AuditSink = Callable[[AuditRecord], None]
T = TypeVar("T")
log = get_logger(__name__)

# Texts longer than this (in all) are scanned in a worker thread. Detectors are linear-time, so
# a scan below it is short; above it a scan could hold the event loop for long.
OFF_LOOP_CHARS = 8_192


async def off_loop(value: object, scan: Callable[[], T]) -> T:
    """`scan()`, in a worker thread when `value` (the JSON it reads) holds more than
    `OFF_LOOP_CHARS` characters of text. Python code in the thread yields the GIL to the event
    loop at the interpreter's switch interval (5 ms)."""
    if text_size(value) <= OFF_LOOP_CHARS:
        return scan()
    return await asyncio.to_thread(scan)


class GuardrailSets:
    """The compiled rules for each combination of policy names (built once, then cached)."""

    def __init__(self, config: GuardrailsConfig) -> None:
        self._policies = config.all_policies
        self._default = config.default
        self._models = config.models
        self._compiled: dict[tuple[str, ...], Guardrails | None] = {}
        self._configured = bool(self._default or self._models)  # rules beside keys' own

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._policies)

    def for_request(self, principal: Principal | None, model: str) -> Guardrails | None:
        if principal is None and not self._configured:
            return None
        names = self._default + self._models.get(model, ())
        key = principal.key if principal is not None else None
        if key is not None and key.guardrails:
            names += key.guardrails
        if not names:
            return None
        unique = tuple(dict.fromkeys(names))
        if unique not in self._compiled:
            policies = [self._policies[n] for n in unique if n in self._policies]
            missing = [n for n in unique if n not in self._policies]
            if missing:  # a key names a policy the configuration no longer has
                log.warning("guardrail_policy_unknown", policies=missing)
            self._compiled[unique] = Guardrails.compile(policies) if policies else None
        return self._compiled[unique]


class ChunkGuard:
    """The output rules over a stream of OpenAI chat chunks. Every streamed text of a choice
    goes through a StreamFilter: each string field of the delta but `role` (`content`,
    `refusal`, `reasoning_content`, ...), each tool call's `function.arguments` and a legacy
    `function_call.arguments`. The filter may hold back a short tail of each until it knows no
    match spans the chunk boundary; the tails are released with the choice's finishing chunk."""

    def __init__(self, gate: RequestGate, guard: Guardrails, info: RequestInfo) -> None:
        self._gate = gate
        self._filter: StreamFilter = guard.stream_filter()
        self._info = info
        self._open: dict[int, dict[str, int | None]] = {}  # choice -> field -> tool call index
        self._envelope: JSONObject = {}

    def apply(self, chunk: JSONObject) -> None:
        """Filter the chunk's texts in place; GuardrailBlockedError on a `block` rule."""
        if not self._envelope:
            self._envelope = {
                k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk
            }
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            for field, holder, key, call in _streamed_texts(delta):
                text = holder[key]
                self._open.setdefault(index, {})[field] = call
                step = self._filter.feed(index, text, field)
                self._gate.findings(step.findings, self._info, step.blocked)
                holder[key] = step.text
            if choice.get("finish_reason") and index in self._open:
                self._release(index, delta)

    def tails(self) -> list[JSONObject]:
        """Chunks carrying what is still held back when the stream ended without finishing
        each choice (rare: upstreams send a finish reason)."""
        chunks: list[JSONObject] = []
        for index in sorted(self._open):
            delta: JSONObject = {}
            self._release(index, delta)
            if delta:
                choice = {"index": index, "delta": delta, "finish_reason": None}
                chunks.append({**self._envelope, "choices": [choice]})
        return chunks

    def _release(self, index: int, delta: JSONObject) -> None:
        """Add what the filter held back of each text of choice `index` to `delta`."""
        for field, call in self._open.pop(index).items():
            step = self._filter.finish(index, field)
            self._gate.findings(step.findings, self._info, step.blocked)
            if step.text:
                _append(delta, field, call, step.text)


def _streamed_texts(delta: JSONObject) -> list[tuple[str, JSONObject, str, int | None]]:
    """(field path, the object holding it, its key, the tool call's index) of each non-empty
    streamed text of a delta."""
    found: list[tuple[str, JSONObject, str, int | None]] = [
        (key, delta, key, None)
        for key, value in delta.items()
        if key != "role" and isinstance(value, str) and value
    ]
    calls = delta.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            number = call.get("index", 0)
            if function["arguments"]:
                path = f"tool_calls[{number}].function.arguments"
                found.append((path, function, "arguments", number))
    legacy = delta.get("function_call")
    if (
        isinstance(legacy, dict)
        and isinstance(legacy.get("arguments"), str)
        and legacy["arguments"]
    ):
        found.append(("function_call.arguments", legacy, "arguments", None))
    return found


def _append(delta: JSONObject, field: str, call: int | None, text: str) -> None:
    """Append `text` to `field` of a delta (creating the tool call entry or field as needed)."""
    if call is not None:
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        entry = next((c for c in calls if c.get("index", 0) == call), None)
        if entry is None:
            entry = {"index": call, "function": {"arguments": ""}}
            calls.append(entry)
        function = entry.setdefault("function", {})
        function["arguments"] = (function.get("arguments") or "") + text
    elif field == "function_call.arguments":
        legacy = delta.setdefault("function_call", {})
        legacy["arguments"] = (legacy.get("arguments") or "") + text
    else:
        delta[field] = (delta.get(field) or "") + text


class RequestGate:
    def __init__(
        self,
        limits: RequestLimits,
        admission: Admission,
        guardrails: GuardrailSets,
        metrics: Metrics,
        audit: AuditSink | None,
    ) -> None:
        self._limits = limits
        self._admission = admission
        self._guardrails = guardrails
        self._metrics = metrics
        self._audit = audit
        self._settling: set[asyncio.Future[None]] = set()  # charges of streams being settled

    # --- validate ------------------------------------------------------------------------------

    def check_chat(self, body: Any) -> None:
        """The request limits, on the raw JSON (before the schema: bounds its work)."""
        check_chat(body, self._limits)

    def check_embeddings(self, body: Any) -> None:
        check_embeddings(body, self._limits)

    def check_models(self, models: Sequence[str], info: RequestInfo) -> None:
        """403 when the caller's key does not allow one of `models`."""
        self._allowed(models, info.principal)

    @staticmethod
    def _allowed(models: Sequence[str], principal: Principal | None) -> None:
        # The names a request asks for. The names it may move to (fallbacks) pass the same
        # filter (Principal.model_filter, in `_reach`), and are skipped rather than refused.
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

    # --- rate limits and budgets ---------------------------------------------------------------

    async def admit(
        self,
        models: Sequence[str],
        info: RequestInfo,
        estimate: Callable[[], Decimal | None] | None = None,
    ) -> Ticket | None:
        """Admit a request that calls `models` (its model, or every branch of a fan-out): the
        caller's limits and budgets, and each called model's limits. `estimate`: the most the
        request can cost, reserved against its budgets (called only when one applies). Also
        sets `info.reach`, which the router asks before it moves the request to any other
        name."""
        ticket = await self._admission.admit(info.principal, models, info, estimate)
        info.reach = self._reach(ticket, info)
        return ticket

    def _reach(self, ticket: Ticket | None, info: RequestInfo) -> Reach | None:
        """May the request move to model `name` (a fallback)? Only if the caller may use it and
        its limits admit one more request (taken into the request's ticket, so settled with
        it). None when nothing could refuse a name."""
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

    def may_limit(self, models: Sequence[str], info: RequestInfo) -> bool:
        """False when `admit` would return None and set no `info.reach` for certain (skip
        awaiting it)."""
        return self._admission.may_apply(info.principal, models)

    async def settle(self, ticket: Ticket, info: RequestInfo) -> None:
        await self._admission.settle(ticket, info)

    async def finish(
        self,
        body: AsyncGenerator[bytes, None],
        stream: AsyncIterator[bytes],
        ticket: Ticket,
        info: RequestInfo,
    ) -> None:
        """After a streamed response (its background task): close `body` (from `settle_after`,
        around `stream`) if the server left it suspended, as it does when the client leaves
        mid-way, which records and settles it. A client gone before the body started leaves
        `body` unstarted (closing it runs nothing): close `stream` itself, which records what
        the upstream produced, then settle (nothing happens for one already settled)."""
        await body.aclose()
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()
        await self._admission.settle(ticket, info)

    async def settle_after(
        self, stream: AsyncIterator[bytes], ticket: Ticket, info: RequestInfo
    ) -> AsyncGenerator[bytes, None]:
        """The stream, with the request settled when it ends (however it ends). A client that
        leaves stops this generator before the inner one: the inner one is closed first, so
        that its usage is recorded (what was streamed) before it is charged; the charge runs
        in a task of its own, which the request's cancellation does not interrupt."""
        try:
            async for part in stream:
                yield part
        finally:
            try:
                if isinstance(stream, AsyncGenerator):
                    await stream.aclose()
            finally:
                settling = asyncio.ensure_future(self._admission.settle(ticket, info))
                self._settling.add(settling)
                settling.add_done_callback(self._settling.discard)
                await asyncio.shield(settling)

    # --- guardrails ----------------------------------------------------------------------------

    async def guard_input(self, chat: ChatRequest, model: str, info: RequestInfo) -> ChatRequest:
        """The input rules on every field of the request that reaches the upstream as text."""
        guard = self._guardrails.for_request(info.principal, model)
        if guard is None or not guard.has_input_rules:
            return chat
        scan = await off_loop(chat.body, partial(guard.scan_request, chat.body))
        self.findings(scan.findings, info, scan.blocked)
        if scan.body is chat.body:
            return chat
        return ChatRequest(body=scan.body, parsed=ChatCompletionRequest.model_validate(scan.body))

    async def guard_embeddings(
        self, call: EmbeddingsCall, model: str, info: RequestInfo
    ) -> EmbeddingsCall:
        """The input rules on the request: each string of `input` (token arrays are not text),
        and `user`."""
        guard = self._guardrails.for_request(info.principal, model)
        if guard is None or not guard.has_input_rules:
            return call
        scan = await off_loop(call.body, partial(guard.scan_request, call.body))
        self.findings(scan.findings, info, scan.blocked)
        if scan.body is call.body:
            return call
        return EmbeddingsCall(body=scan.body, parsed=EmbeddingsRequest.model_validate(scan.body))

    async def guard_output(self, result: JSONObject, model: str, info: RequestInfo) -> JSONObject:
        guard = self._guardrails.for_request(info.principal, model)
        if guard is None or not guard.has_output_rules:
            return result
        scan = await off_loop(result.get("choices"), partial(guard.scan_response, result))
        self.findings(scan.findings, info, scan.blocked)
        return scan.body

    def chunk_guard(self, model: str, info: RequestInfo) -> ChunkGuard | None:
        guard = self._guardrails.for_request(info.principal, model)
        return ChunkGuard(self, guard, info) if guard is not None else None

    def findings(
        self, found: Sequence[Finding], info: RequestInfo, blocked: Finding | None
    ) -> None:
        """Count what the rules found and audit flags and blocks (never the matched text);
        raise on a block."""
        for finding in found:
            self._metrics.guardrail_findings.labels(
                finding.rule, finding.direction, finding.action
            ).inc(finding.count)
            if finding.action == "flag" and finding is not blocked:
                self._audit_finding(CONTENT_FLAGGED, "success", finding, info)
        if blocked is None:
            return
        self._audit_finding(CONTENT_BLOCKED, "blocked", blocked, info)
        where = "request" if blocked.direction == "input" else "response"
        raise GuardrailBlockedError(
            f"The {where} was blocked by the content rule {blocked.rule!r} "
            f"({blocked.detector} at {blocked.location}).",
            param=blocked.location if blocked.direction == "input" else None,
        )

    def _audit_finding(
        self, action: str, outcome: Outcome, finding: Finding, info: RequestInfo
    ) -> None:
        if self._audit is None:
            return
        principal = info.principal
        self._audit(
            AuditRecord(
                actor=principal.actor if principal is not None else "anonymous",
                action=action,
                outcome=outcome,
                source_ip=info.client_ip,
                request_id=info.request_id or None,
                details={
                    "rule": finding.rule,
                    "policy": finding.policy,
                    "detector": finding.detector,
                    "direction": finding.direction,
                    "location": finding.location,
                    "count": finding.count,
                },
            )
        )
