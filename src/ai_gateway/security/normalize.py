"""The text the built-in detectors read: invisible characters removed, compatibility forms
folded (NFKC), with a map back to the original's positions.

An email with a zero-width space inside, a card number in full-width digits (U+FF10-FF19) or an
email in full-width letters and at sign are found like their plain forms, and a redaction
covers the original characters (the invisible ones inside a match too).

Each character is normalised on its own (NFKC of one character; the invisible ones in
`INVISIBLE` dropped), so the view of a text is the concatenation of the views of its pieces: a
stream scanned in windows sees the same view as the whole text. ASCII text, and text that is
already NFKC without invisible characters, is its own view (no copy, no map).

Operator `regex` rules read the original text (a pattern may mean a precise character).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass

from ai_gateway.security.detectors import Detector, DetectorScan, Hit

# Zero-width and other invisible formatting characters (soft hyphen, bidi marks and isolates,
# word joiner, invisible operators, byte order mark).
INVISIBLE = "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_INVISIBLE = re.compile(f"[{INVISIBLE}]")


@dataclass(frozen=True, slots=True)
class View:
    """`text` as the detectors read it; `origin[k]` is the original position of `text[k]`
    (`origin[len(text)]` the original's length), None when the view is the original."""

    text: str
    origin: list[int] | None = None

    def scan(self, detector: Detector, pos: int, final: bool) -> DetectorScan:
        """`detector.scan` of the original text from `pos`, run on the view."""
        origin = self.origin
        if origin is None:
            return detector.scan(self.text, pos, final)
        found = detector.scan(self.text, bisect_left(origin, pos), final)
        return DetectorScan(
            tuple(Hit(origin[h.start], self.end(h.end), h.tag) for h in found.hits),
            tuple((origin[a], self.end(b)) for a, b in found.extents),
            None if found.undecided is None else origin[found.undecided],
        )

    def hold(self, detector: Detector) -> int:
        """`detector.hold`, in the original's positions."""
        held = detector.hold(self.text)
        if self.origin is None or held <= 0:
            return held
        return self.origin[min(held, len(self.text))]

    def end(self, k: int) -> int:
        """The original position after the view's `text[:k]` (a whole original character)."""
        assert self.origin is not None
        return self.origin[k - 1] + 1 if k > 0 else self.origin[0]


def view(text: str) -> View:
    if text.isascii() or (
        _INVISIBLE.search(text) is None and unicodedata.is_normalized("NFKC", text)
    ):
        return View(text)
    parts: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch < "\x80":
            parts.append(ch)
            origin.append(i)
        elif _INVISIBLE.match(ch) is None:
            folded = unicodedata.normalize("NFKC", ch)
            parts.append(folded)
            origin.extend([i] * len(folded))
    origin.append(len(text))
    return View("".join(parts), origin)
