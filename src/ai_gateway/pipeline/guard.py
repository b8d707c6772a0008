"""The content-rule stage: before, the input rules on every field of the request that reaches
the upstream as text (block: 400, redact, flag); after, the output rules on the answer, or on
each chunk of a stream (`ChunkGuard`). Findings are counted, and flags and blocks audited (never
the matched text). Nothing runs when no rule applies to the caller and model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from ai_gateway.errors import GuardrailBlockedError
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.chunk_guard import ChunkGuard
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind, Outcome
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.security.audit import CONTENT_BLOCKED, CONTENT_FLAGGED, AuditRecord
from ai_gateway.security.audit import Outcome as AuditOutcome
from ai_gateway.security.config import GuardrailsConfig
from ai_gateway.security.guardrails import Finding, Guardrails
from ai_gateway.security.guardrails_fields import text_size
from ai_gateway.security.principal import Principal

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


class Guard:
    def __init__(self, sets: GuardrailSets, metrics: Metrics, audit: AuditSink | None) -> None:
        self._sets = sets
        self._metrics = metrics
        self._audit = audit

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        info = exchange.info
        guard = self._sets.for_request(info.principal, exchange.model)
        if guard is None:
            return await next(exchange)
        if guard.has_input_rules:
            await self._scan_request(exchange, guard)
        outcome = await next(exchange)
        if not guard.has_output_rules or exchange.kind is not Kind.CHAT:
            return outcome  # embeddings are numbers: nothing to scan
        report = partial(self.findings, info=info)
        if isinstance(outcome, dict):
            scan = await off_loop(outcome.get("choices"), partial(guard.scan_response, outcome))
            report(scan.findings, scan.blocked)
            return scan.body
        return _guarded(outcome, ChunkGuard(guard, report))

    async def _scan_request(self, exchange: Exchange, guard: Guardrails) -> None:
        """The input rules; a redacted request replaces the exchange's. For embeddings: each
        string of `input` (token arrays are not text), and `user`."""
        body = exchange.request.body
        scan = await off_loop(body, partial(guard.scan_request, body))
        self.findings(scan.findings, scan.blocked, info=exchange.info)
        if scan.body is body:
            return
        if exchange.kind is Kind.CHAT:
            parsed = ChatCompletionRequest.model_validate(scan.body)
            exchange.request = ChatRequest(body=scan.body, parsed=parsed)
        else:
            embeddings = EmbeddingsRequest.model_validate(scan.body)
            exchange.request = EmbeddingsCall(body=scan.body, parsed=embeddings)

    def findings(
        self, found: Sequence[Finding], blocked: Finding | None, *, info: RequestInfo
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
        self, action: str, outcome: AuditOutcome, finding: Finding, info: RequestInfo
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


async def _guarded(chunks: Chunks, guard: ChunkGuard) -> Chunks:
    """The stream with the output rules applied to each chunk, and what they held back at a
    chunk boundary released at the end."""
    try:
        async for chunk in chunks:
            guard.apply(chunk)
            yield chunk
        for tail in guard.tails():
            yield tail
    finally:
        await chunks.aclose()
