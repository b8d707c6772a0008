"""Detectors for the content guardrails: where in a text a kind of sensitive content is.

A detector answers "which spans `(start, end)` of this text are an email / a card number / a key
/ ...". It never keeps the text it matched: a span is two integers, and a candidate's text is
looked at only while it is validated (Luhn, mod-97, character mix).

Most detectors are a few *shapes*: a bounded regular expression that finds a candidate, an optional
*extension* (a run of characters that continues the candidate, so a 2 KB JWT or a PEM body is
covered whole without an unbounded expression) and an optional check that accepts the candidate
or parts of it. `max_len` bounds how far one attempt of any shape looks from where it starts. A
scan reports:

- `hits`: validated spans, overlaps between shapes removed (what a rule acts on);
- `extents`: every candidate's whole extent, validated or not (a stream must not cut through one);
- `undecided`: the start of a candidate whose extension runs into the end of the text, so more
  text could change it (only when `final` is false).

The scanned region starts at `pos`; text before it is context for look-behind assertions only.

`hold(text)`: where attempts stop being decided at the end of a text that may continue (a stream).
An attempt starting `max_len` or more characters before the end is decided. So is one starting at
or before the last character that no match can contain (a `Hold`'s `chars`), as long as the
assertions after a match (`lookahead` characters) still fall inside the text: the streaming
filter then holds back only the last word or number instead of `max_len` characters.

Speed: each shape is its own expression that starts with a literal (the word-boundary look-behind
comes after the first characters), so `re` skips ahead with its fast prefix search instead of
trying every position; case-insensitive detectors match lower-cased ASCII text; `triggers` (a
literal one of which any match contains) skip a detector for a text in a substring test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ai_gateway.security.guardrails_config import DetectorKind
from ai_gateway.security.patterns import LinearPattern, compile_linear

Span = tuple[int, int]
Check = Callable[[str], Sequence[Span]]
"""Given a candidate's text, the accepted sub-spans (relative to the candidate); () rejects it."""

# Hold-back for an operator's regexes, whose longest match cannot be known (`RegexDetector`).
REGEX_WINDOW = 256
# Characters a built-in expression searches per call (see `bounded_finditer`).
SEARCH_CHUNK = 8192


@dataclass(frozen=True, slots=True)
class Hit:
    """One validated span; `tag` is the index of the shape that found it."""

    start: int
    end: int
    tag: int = 0


@dataclass(frozen=True, slots=True)
class DetectorScan:
    hits: tuple[Hit, ...] = ()
    extents: tuple[Span, ...] = ()
    undecided: int | None = None


NOTHING = DetectorScan()


@dataclass(frozen=True, slots=True)
class Shape:
    """One alternative of a detector (see the module docstring)."""

    source: str
    check: Check | None = None
    extend: re.Pattern[str] | None = None
    lookahead: int = 1  # characters after the extension's end that decide where it ends
    weight: float = 0.0  # prompt-injection score of this phrase


class Hold:
    """The undecided tail for shapes whose matches contain only `chars` (a character-class body,
    None: any) and look at most `lookahead` characters past their end (see the module
    docstring)."""

    def __init__(self, max_len: int, chars: str | None = None, lookahead: int = 0) -> None:
        self.max_len = max_len
        self.lookahead = lookahead
        self._run = re.compile(f"[{chars}]*") if chars is not None else None

    def start(self, text: str) -> int:
        n = len(text)
        floor = n - self.max_len
        if self._run is None:
            return floor
        end = max(n - self.lookahead, 0)
        tail = text[max(floor, 0) : end][::-1]
        run = self._run.match(tail)
        length = run.end() if run is not None else 0
        return floor if length == len(tail) else end - length


def edge_word(word: str) -> str:
    """`word` (literal) as an expression that does not continue a preceding word. The look-behind
    follows the word, so the expression starts with a literal prefix."""
    escaped = re.escape(word)
    if re.match(r"\w", word):
        return rf"{escaped}(?<!\w{escaped})"
    return rf"(?<!\w){escaped}"


def _dedupe(hits: list[Hit]) -> list[Hit]:
    """Drop hits overlapping an earlier one (earliest start, then longest, then shape order)."""
    hits.sort(key=lambda h: (h.start, -h.end, h.tag))
    kept: list[Hit] = []
    for hit in hits:
        if not kept or hit.start >= kept[-1].end:
            kept.append(hit)
    return kept


class PatternDetector:
    """A detector made of shapes, each compiled once. With `lowered`, shapes are written in lower
    case and match `text.lower()` (ASCII text) or, for other text, the original with IGNORECASE.
    `triggers`: literals (lower case when `lowered`) one of which every match contains."""

    normalizes = True

    def __init__(
        self,
        kind: DetectorKind,
        shapes: Sequence[Shape],
        max_len: int,
        triggers: Sequence[str] = (),
        lowered: bool = False,
        holds: Sequence[Hold] = (),
    ) -> None:
        self.kind: DetectorKind = kind
        self.max_len = max_len
        self.shapes = tuple(shapes)
        self._holds = tuple(holds) or (Hold(max_len),)
        self.triggers = tuple(triggers)
        self._lowered = lowered
        self._regexes = tuple(re.compile(s.source) for s in shapes)
        self._folded = tuple(re.compile(s.source, re.IGNORECASE) for s in shapes) if lowered else ()

    def _subject(self, text: str) -> tuple[str, tuple[re.Pattern[str], ...]] | None:
        if not self._lowered:
            if self.triggers and not any(t in text for t in self.triggers):
                return None
            return text, self._regexes
        if not text.isascii():
            # Lower-casing may move positions (`İ` becomes two characters) and IGNORECASE also
            # matches a long s (U+017F) to `s`: run on the text itself, without triggers.
            return text, self._folded
        low = text.lower()
        if self.triggers and not any(t in low for t in self.triggers):
            return None
        return low, self._regexes

    def hold(self, text: str) -> int:
        return min(h.start(text) for h in self._holds)

    def scan(self, text: str, pos: int = 0, final: bool = True) -> DetectorScan:
        subject = self._subject(text)
        if subject is None:
            return NOTHING
        hits: list[Hit] = []
        extents: list[Span] = []
        undecided: int | None = None
        for tag, (shape, regex) in enumerate(zip(self.shapes, subject[1], strict=True)):
            found = _scan_shape(
                subject[0], pos, final, tag, shape, regex, self.max_len, hits, extents
            )
            if found is not None and (undecided is None or found < undecided):
                undecided = found
        if len(self.shapes) > 1:
            hits = _dedupe(hits)
        return DetectorScan(tuple(hits), tuple(extents), undecided)


def bounded_finditer(
    regex: re.Pattern[str], text: str, pos: int, reach: int, chunk: int = SEARCH_CHUNK
) -> Iterator[re.Match[str]]:
    """`regex.finditer(text, pos)` for an expression whose match and look-ahead span at most
    `reach` characters, searched `chunk` characters at a time. Each search then looks at
    a bounded slice, so no single call into `re` (which holds the GIL) lasts long on a large
    text; a match starting in a chunk saw all the text it could look at, so the matches are the
    same."""
    n = len(text)
    while pos < n:
        stop = min(n, pos + chunk)
        m = regex.search(text, pos, min(n, stop + reach))
        if m is None or m.start() >= stop:
            pos = stop
            continue
        yield m
        pos = max(m.end(), m.start() + 1)


def _scan_shape(
    text: str,
    pos: int,
    final: bool,
    tag: int,
    shape: Shape,
    regex: re.Pattern[str],
    reach: int,
    hits: list[Hit],
    extents: list[Span],
) -> int | None:
    """Append one shape's hits and extents; return the start of an undecided candidate."""
    consumed = pos
    short = len(text) - pos <= SEARCH_CHUNK
    matches = regex.finditer(text, pos) if short else bounded_finditer(regex, text, pos, reach)
    for m in matches:
        start, end = m.span()
        if start < consumed or start == end:
            continue
        run = shape.extend.match(text, end) if shape.extend is not None else None
        if run is not None:
            end = run.end()
            if not final and end + shape.lookahead > len(text):
                extents.append((start, end))
                return start
        consumed = end
        extents.append((start, end))
        spans = ((0, end - start),) if shape.check is None else shape.check(text[start:end])
        hits.extend(Hit(start + a, start + b, tag) for a, b in spans)
    return None


class InjectionDetector(PatternDetector):
    """Prompt-injection phrases, each with a weight; a text is flagged when the weights of the
    distinct phrases it contains add up to the rule's threshold."""

    def score(self, tags: Collection[int]) -> float:
        return sum(self.shapes[t].weight for t in set(tags))


class RegexDetector:
    """An operator's regular expressions, compiled once by RE2 (`compile_linear`), each run on
    its own (one alternation would change which of two overlapping matches wins).

    The longest match of an arbitrary expression cannot be known: in a stream, a match longer
    than `REGEX_WINDOW` characters may be cut. Write bounded patterns (`{1,40}`, not `+`)."""

    kind: DetectorKind = "regex"
    max_len = REGEX_WINDOW
    normalizes = False  # an operator's pattern may mean a precise character

    def __init__(self, patterns: Iterable[LinearPattern]) -> None:
        self._patterns = tuple(patterns)

    def hold(self, text: str) -> int:
        return len(text) - self.max_len

    def scan(self, text: str, pos: int = 0, final: bool = True) -> DetectorScan:
        extents = [
            m.span()
            for p in self._patterns
            for m in p.finditer(text, pos)
            if m.span()[1] > m.span()[0]
        ]
        hits = _dedupe([Hit(s, e) for s, e in extents])
        return DetectorScan(tuple(hits), tuple(extents))


class Detector(Protocol):
    kind: DetectorKind
    max_len: int
    normalizes: bool  # reads the normalised text (`security.normalize`), not the original

    def hold(self, text: str) -> int: ...

    def scan(self, text: str, pos: int = 0, final: bool = True) -> DetectorScan: ...


def deny_list_detector(words: Iterable[str], case_sensitive: bool) -> PatternDetector:
    """Whole words or phrases (any run of 1-8 whitespace characters between a phrase's words)."""
    phrases = {" ".join(w.split()) for w in words if w.strip()}
    if not case_sensitive:
        phrases = {p.lower() for p in phrases}
    ordered = sorted(phrases, key=len, reverse=True)  # the longest alternative wins
    alternatives = []
    for phrase in ordered:
        first, *rest = phrase.split(" ")
        tail = "".join(r"\s{1,8}" + re.escape(word) for word in rest)
        alternatives.append(edge_word(first) + tail)
    longest = max(len(p) + 7 * p.count(" ") for p in ordered)
    # A substring test per phrase is cheaper than the expression up to a few dozen phrases.
    triggers = [p.split(" ")[0] for p in ordered] if len(ordered) <= 32 else []
    return PatternDetector(
        "deny_list",
        [Shape(rf"(?:{'|'.join(alternatives)})(?!\w)")],
        max_len=longest + 2,
        triggers=triggers,
        lowered=not case_sensitive,
    )


def regex_detector(patterns: Iterable[str], case_sensitive: bool) -> RegexDetector:
    """Raises `PatternError` for a pattern RE2 cannot compile (the config model names the
    rule)."""
    return RegexDetector(compile_linear(p, case_sensitive) for p in patterns)
