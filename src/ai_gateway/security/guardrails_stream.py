"""The output guardrails of a streamed response: redact and block across chunk boundaries.

A `StreamFilter` belongs to one stream. Each streamed field of each choice (`content`,
`refusal`, `reasoning_content`, a tool call's `arguments`, ...: the caller names it) is its own
text: for each it keeps the text not yet emitted (`pending`) and the last few emitted characters
(the context look-behind assertions need). `feed` appends the delta and, once `STEP` characters
(and at least as many as were held back before) have arrived since the last scan, scans context
+ pending and emits the decided prefix (see `guardrails_scan`). Waiting for as many new
characters as are held keeps the work linear when a candidate stays open for long (a token that
goes on and on is not rescanned from its start on every delta). What stays behind is the tail that
could still become part of a match: the last word or number (an email, a card number being
typed), the last 26 characters with the built-in secret rule (`Bearer ` + a token), the last 200
with a prompt_injection rule, the last 256 with a regex rule; more while a candidate is still
open (a token whose characters reach the end, a PEM block without its END line yet). `finish`
scans and emits the rest. It scans every `STEP` characters rather than on every delta, so that a
long answer streamed in tiny deltas is not rescanned once per delta.

Whatever the chunking, the concatenation of the emitted texts equals the one-shot redaction of the
whole text, and the findings' counts add up to the one-shot counts (a property test proves it). An
operator's regex is exact only for matches of up to `REGEX_WINDOW` characters.

Once a `block` rule matches, nothing more is emitted on any choice: every later step returns the
blocking finding; the caller ends the stream (finish_reason "content_filter" or an error event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ai_gateway.security.guardrails_scan import DirectionScanner, Finding, InjectionState

# Characters of emitted text kept as look-behind context (the longest built-in look-behind is
# `\bBearer `, 8 characters).
CONTEXT = 16
# Characters to receive between two scans of a choice's pending text.
STEP = 32


@dataclass(frozen=True, slots=True)
class StreamStep:
    """What to send now (`text`, possibly empty), what was found in it, and whether the stream is
    blocked (then `text` is empty)."""

    text: str
    findings: tuple[Finding, ...] = ()
    blocked: Finding | None = None


@dataclass(slots=True)
class _Text:
    context: str = ""
    pending: str = ""
    unscanned: int = 0
    injection: dict[int, InjectionState] = field(default_factory=dict)


class StreamFilter:
    """Per-stream state; not shared between streams or tasks. Without output rules it passes every
    delta through unchanged."""

    def __init__(self, scanner: DirectionScanner | None) -> None:
        self._scanner = scanner
        self._texts: dict[tuple[int, str], _Text] = {}
        self._blocked: Finding | None = None

    @property
    def blocked(self) -> Finding | None:
        return self._blocked

    def feed(self, index: int, text: str, field: str = "content") -> StreamStep:
        """Take a delta of `field` (its path in the delta) of choice `index`; return what may be
        sent now."""
        if self._scanner is None:
            return StreamStep(text)
        if self._blocked is not None:
            return StreamStep("", (), self._blocked)
        state = self._texts.get((index, field))
        if state is None:
            state = self._texts[index, field] = _Text()
        state.pending += text
        state.unscanned += len(text)
        if state.unscanned < max(STEP, len(state.pending) - state.unscanned):
            return StreamStep("")
        state.unscanned = 0
        return self._step(self._scanner, index, field, state, final=False)

    def finish(self, index: int, field: str = "content") -> StreamStep:
        """`field` of choice `index` has ended (its finish_reason arrived): scan and return the
        rest."""
        state = self._texts.pop((index, field), None)
        if self._blocked is not None:
            return StreamStep("", (), self._blocked)
        if self._scanner is None or state is None or not state.pending:
            return StreamStep("")
        return self._step(self._scanner, index, field, state, final=True)

    def _step(
        self, scanner: DirectionScanner, index: int, field: str, state: _Text, final: bool
    ) -> StreamStep:
        window = state.context + state.pending
        pos = len(state.context)
        outcome = scanner.scan(
            window,
            f"choices[{index}].delta.{field}",
            scanner.rules,
            pos=pos,
            final=final,
            injection=state.injection,
        )
        if outcome.blocked is not None:
            self._blocked = outcome.blocked
            self._texts.clear()
            return StreamStep("", outcome.findings, outcome.blocked)
        state.context = window[max(0, outcome.cut - CONTEXT) : outcome.cut]
        state.pending = window[outcome.cut :]
        return StreamStep(outcome.text, outcome.findings)
