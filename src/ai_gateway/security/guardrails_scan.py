"""Scanning one text for one direction's rules: detectors, actions, redaction, findings.

`DirectionScanner.scan` serves both the one-shot scans (`final=True`, the whole text) and the
streaming filter (`final=False`, a window of which only a prefix is decided). In the streaming case
it returns a *cut*: everything before it is decided (every detector's attempt there looked only at
known text (`Detector.hold`), no candidate straddles the cut, no token run touches the end), so
the redacted text up to the cut is exactly what a scan of the whole stream would produce there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ai_gateway.security.detectors import Detector, DetectorScan, InjectionDetector
from ai_gateway.security.guardrails_config import Action, DetectorKind, Direction
from ai_gateway.security.normalize import View, view


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule matched `count` times at `location` (e.g. `messages[2].content`,
    `messages[0].content[1].text`, `choices[0].message.content`, `choices[0].delta.content`).

    It never holds the matched text, nor any part of it: it is safe to log, to count in metrics
    and to write to the audit log."""

    policy: str
    rule: str
    detector: DetectorKind
    action: Action
    direction: Direction
    location: str
    count: int


@dataclass(frozen=True, slots=True)
class CompiledRule:
    order: int  # position among all compiled rules; keys per-stream state
    policy: str
    name: str
    action: Action
    detector: Detector
    roles: frozenset[str]  # empty: every role
    threshold: float  # prompt_injection only

    def finding(self, direction: Direction, location: str, count: int) -> Finding:
        kind = self.detector.kind
        return Finding(self.policy, self.name, kind, self.action, direction, location, count)


@dataclass(slots=True)
class InjectionState:
    """What a text (or a stream's choice) has matched so far for one prompt_injection rule."""

    tags: set[int] = field(default_factory=set)
    count: int = 0
    fired: bool = False


@dataclass(frozen=True, slots=True)
class TextOutcome:
    text: str  # the scanned region up to `cut`, redacted
    cut: int
    findings: tuple[Finding, ...]
    blocked: Finding | None
    redacted: bool


def marker(kind: DetectorKind) -> str:
    return f"[REDACTED:{kind}]"


class DirectionScanner:
    """The compiled rules of one direction; immutable, shared by every request.

    Rules with equal detector settings share one detector, run once per text."""

    def __init__(self, direction: Direction, rules: Sequence[CompiledRule]) -> None:
        self.direction: Direction = direction
        self.rules = tuple(rules)
        self.detectors = tuple({id(r.detector): r.detector for r in rules}.values())
        roles = {role for rule in rules for role in rule.roles}
        self._by_role: Mapping[str, tuple[CompiledRule, ...]] = {
            role: tuple(r for r in rules if not r.roles or role in r.roles) for role in roles
        }
        self._unrestricted = tuple(r for r in rules if not r.roles)

    def rules_for(self, role: object) -> tuple[CompiledRule, ...]:
        """The rules that apply to a message of this role (all rules for output)."""
        if isinstance(role, str):
            return self._by_role.get(role, self._unrestricted)
        return self._unrestricted

    def scan(
        self,
        text: str,
        location: str,
        rules: Sequence[CompiledRule],
        pos: int = 0,
        final: bool = True,
        injection: dict[int, InjectionState] | None = None,
    ) -> TextOutcome:
        """Scan `text[pos:]` (`text[:pos]` is context for look-behinds) with `rules`.

        `injection` carries prompt-injection scores across calls (a stream); None: this text
        alone."""
        n = len(text)
        scans: dict[int, DetectorScan] = {}
        per_rule: list[tuple[CompiledRule, DetectorScan]] = []
        original = View(text)
        folded: View | None = None
        for rule in rules:
            found = scans.get(id(rule.detector))
            if found is None:
                if rule.detector.normalizes and folded is None:
                    folded = view(text)
                source = folded if rule.detector.normalizes and folded is not None else original
                found = scans[id(rule.detector)] = source.scan(rule.detector, pos, final)
            per_rule.append((rule, found))
        cut = n if final else max(pos, self._cut(folded or view(text), original, scans.values()))

        findings: list[Finding] = []
        blocked: Finding | None = None
        spans: list[tuple[int, int, int, DetectorKind]] = []
        states = {} if injection is None else injection
        for rule, found in per_rule:
            hits = [h for h in found.hits if h.start < cut]
            if isinstance(rule.detector, InjectionDetector):
                state = states.setdefault(rule.order, InjectionState())
                count = _injection_count(
                    rule.detector, rule.threshold, state, (h.tag for h in hits)
                )
            else:
                count = len(hits)
            if not count:
                continue
            finding = rule.finding(self.direction, location, count)
            findings.append(finding)
            if rule.action == "block" and blocked is None:
                blocked = finding
            elif rule.action == "redact":
                spans.extend((h.start, h.end, rule.order, rule.detector.kind) for h in hits)
        return TextOutcome(
            _redact(text, pos, cut, spans), cut, tuple(findings), blocked, bool(spans)
        )

    def _cut(self, folded: View, original: View, scans: Iterable[DetectorScan]) -> int:
        """The end of the decided prefix of a text that may continue."""
        cut = min(
            (folded if detector.normalizes else original).hold(detector)
            for detector in self.detectors
        )
        extents: list[tuple[int, int]] = []
        for found in scans:
            if found.undecided is not None:
                cut = min(cut, found.undecided)
            extents.extend(found.extents)
        # Descending starts: an extent seen earlier starts at or after any later cut, so one pass
        # pulls the cut back before every candidate it would split.
        for start, end in sorted(extents, reverse=True):
            if start < cut < end:
                cut = start
        return cut


def _injection_count(
    detector: InjectionDetector, threshold: float, state: InjectionState, tags: Iterable[int]
) -> int:
    """Matches to report now: none below the threshold, all so far when it is reached, then each
    new one."""
    before = state.count
    for tag in tags:
        state.tags.add(tag)
        state.count += 1
    if state.fired:
        return state.count - before
    if state.count and detector.score(state.tags) >= threshold:
        state.fired = True
        return state.count
    return 0


def _redact(text: str, pos: int, cut: int, spans: list[tuple[int, int, int, DetectorKind]]) -> str:
    """`text[pos:cut]` with each group of overlapping spans replaced by one marker, named after the
    group's first span (earliest start, then longest, then rule order)."""
    if not spans:
        return text[pos:cut]
    spans.sort(key=lambda s: (s[0], -s[1], s[2]))
    out: list[str] = []
    last = pos
    group_start, group_end, kind = spans[0][0], spans[0][1], spans[0][3]
    for start, end, _, next_kind in spans[1:]:
        if start < group_end:
            group_end = max(group_end, end)
            continue
        out.extend((text[last:group_start], marker(kind)))
        last, group_start, group_end, kind = group_end, start, end, next_kind
    out.extend((text[last:group_start], marker(kind), text[group_end:cut]))
    return "".join(out)
