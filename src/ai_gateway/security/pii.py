"""Personal data detectors: email addresses, phone numbers, payment cards, IBANs.

- email: `local@domain`, local part up to 64 characters, domain up to 120 with at least two
  labels (each 1-63, no leading or trailing hyphen) and an alphabetic TLD. Found from each `@`.
- phone: `+CC` and 8-14 more digits in groups (`+1 (555) 123-4567`, `+44 20 7946 0958`,
  `+4915112345678`); North American `(555) 123-4567`, `555-123-4567`, `555.123.4567`; and trunk
  prefix 0 numbers with separators (`020 7946 0958`, `06 12 34 56 78`). Never a run of digits
  without a separator (an integer), never fewer than 9 digits (years, short numbers), never a
  number continued by more digits. National numbers have at most 12 digits and cards at least 13
  without a `+`, so a card number is never also a phone number.
- card: 13-19 digits, optionally grouped by spaces or dashes, starting with 2-6 (the issuer
  ranges; timestamps and snowflake ids start with 1), not all one digit, passing the Luhn check.
  The longest run of whole groups that passes counts, in a run of up to 48 digits in groups
  (`4111 1111 1111 1111 123`, `order 12 4111 1111 1111 1111`).
- iban: two capitals, two check digits, the BBAN, optionally grouped by single spaces; the
  country's length (15-34 for countries not in `IBAN_LENGTHS`) and ISO 7064 mod-97 == 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from types import MappingProxyType

from ai_gateway.security.detectors import (
    NOTHING,
    Check,
    DetectorScan,
    Hit,
    Hold,
    PatternDetector,
    Shape,
    Span,
)
from ai_gateway.security.guardrails_config import DetectorKind

IBAN_LENGTHS: Mapping[str, int] = MappingProxyType({
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
})  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO 7064 mod-97 works on digits: each letter stands for two (A=10 ... Z=35).
_IBAN_DIGITS = {ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled by the Luhn rule, digits summed


def iban_ok(compact: str) -> bool:
    """ISO 13616 without spaces: country, check digits, length and mod-97 == 1."""
    if not (
        compact.isascii() and compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum()
    ):
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if len(compact) != expected and (expected is not None or not 15 <= len(compact) <= 34):
        return False
    return int((compact[4:] + compact[:4]).upper().translate(_IBAN_DIGITS)) % 97 == 1


WindowOk = Callable[[str, Sequence[int]], Callable[[int, int], bool] | None]
"""Given a candidate's characters without separators and the offsets in it where its groups
start, a test of `compact[a:b]` (called for each run of whole groups of the right length, so it
must be cheap), or None when no run can pass."""


def _best_run(separators: str, shortest: int, longest: int, ok: WindowOk) -> Check:
    """A check accepting the longest run of whole groups (split at `separators`) whose text
    without separators has `shortest`-`longest` characters and passes `ok` (the earliest of
    equally long runs): a card followed by a CVV or preceded by other numbers, an IBAN followed
    by a word in capitals.

    Linear in the candidate: a group has at least one character, so at most
    `longest - shortest + 1` runs per first group have the right length."""
    group = re.compile(f"[^{separators}]+")

    def check(text: str) -> Sequence[Span]:
        groups = [m.span() for m in group.finditer(text)]
        offsets = [0]
        for start, end in groups:
            offsets.append(offsets[-1] + end - start)
        accepts = ok("".join(text[a:b] for a, b in groups), offsets)
        if accepts is None:
            return ()
        widest = max(b - a for a, b in groups)
        for count in range(min(len(groups), longest), 0, -1):
            if count * widest < shortest:
                break
            for i in range(len(groups) - count + 1):
                a, b = offsets[i], offsets[i + count]
                if shortest <= b - a <= longest and accepts(a, b):
                    return ((groups[i][0], groups[i + count - 1][1]),)
        return ()

    return check


def _card_window(digits: str, offsets: Sequence[int]) -> Callable[[int, int], bool] | None:
    """`digits[a:b]` starts with 2-6, is not all one digit and passes the Luhn check.

    In `digits[a:b]` the Luhn rule doubles the digits at positions of the parity of `b`, so
    running sums (mod 10) with the digits of one parity doubled (`sums[b % 2]`) give any run's
    checksum as a difference. A candidate without a group starting with 2-6, or all of one
    digit, costs nothing more."""
    if len(set(digits)) == 1 or not any(digits[k] in "23456" for k in offsets[:-1]):
        return None
    values = [ord(ch) - 48 for ch in digits]
    even = [_DOUBLED[v] if k % 2 == 0 else v for k, v in enumerate(values)]
    odd = [v if k % 2 == 0 else _DOUBLED[v] for k, v in enumerate(values)]
    sums = (
        [total % 10 for total in accumulate(even, initial=0)],
        [total % 10 for total in accumulate(odd, initial=0)],
    )
    same = [0]  # same[k]: where the run of equal digits through position k starts
    for k in range(1, len(digits)):
        same.append(same[-1] if digits[k] == digits[k - 1] else k)
    return lambda a, b: (
        digits[a] in "23456" and same[b - 1] > a and sums[b % 2][b] == sums[b % 2][a]
    )


def _iban_window(compact: str, offsets: Sequence[int]) -> Callable[[int, int], bool] | None:
    """`compact[a:b]` is an IBAN (country, check digits, the country's length, mod-97)."""
    starts = {
        a for a in offsets[:-1] if compact[a : a + 2].isalpha() and compact[a + 2 : a + 4].isdigit()
    }
    if not starts:
        return None
    return lambda a, b: a in starts and iban_ok(compact[a:b])


def _phone_check(low: int, high: int) -> Callable[[str], Sequence[Span]]:
    def check(text: str) -> Sequence[Span]:
        digits = sum(ch.isdigit() for ch in text)
        if not low <= digits <= high or digits == len(text):
            return ()  # too short or long, or an integer without separators
        return ((0, len(text)),)

    return check


# Not inside a word or a longer number: `(?<![\w+]X)(?<!\d[ .\-]X)` after the first character X.
_AFTER = r"(?![\w]|[ .\-]?\d)"


def _edge(first: str) -> str:
    return rf"{first}(?<![\w+]{first})(?<!\d[ .\-]{first})"


def phone_detector() -> PatternDetector:
    shapes = [
        Shape(_edge(r"\+") + r"\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,6}" + _AFTER, _phone_check(9, 15)),
        Shape(_edge(r"\(") + r"\d{3}\)[ .\-]?\d{3}[.\-]\d{4}" + _AFTER, _phone_check(10, 10)),
        Shape(_edge(r"\d") + r"\d{2}[.\-]\d{3}[.\-]\d{4}" + _AFTER, _phone_check(10, 10)),
        Shape(_edge("0") + r"\d{1,4}(?:[ .\-]?\d{2,4}){2,5}" + _AFTER, _phone_check(9, 12)),
    ]
    return PatternDetector("phone", shapes, max_len=64, holds=[Hold(64, r"0-9 .\-()+", 2)])


def card_detector() -> PatternDetector:
    # A run of up to 48 digits in groups; the check finds the card in it.
    source = r"\d(?<![\w.\-]\d)(?:[ \-]?\d){12,47}(?!\d)"
    shape = Shape(source, _best_run(" -", 13, 19, _card_window))
    return PatternDetector("card", [shape], max_len=97, holds=[Hold(97, r"0-9 \-", 1)])


def iban_detector() -> PatternDetector:
    source = r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])"
    shape = Shape(source, _best_run(" ", 15, 34, _iban_window))
    return PatternDetector("iban", [shape], max_len=70, holds=[Hold(70, "A-Z0-9 ", 1)])


class EmailDetector:
    """Emails, found from each `@` (a substring search) rather than by trying an expression at
    every position. Same semantics as the expression
    `(?<![L])[L]{1,64}@[D]{4,120}(?![D])` (L: local-part characters, D: domain characters) run
    with `finditer`, then the label check."""

    kind: DetectorKind = "email"
    max_len = 64 + 1 + 120 + 1
    normalizes = True
    _LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,65}\Z")  # run before the `@`; 65 means too long
    _DOMAIN = re.compile(r"[A-Za-z0-9.\-]{0,121}")
    # An `@` with fewer domain characters after it cannot start an email: skipped by `re`.
    _AT = re.compile(r"@(?=[A-Za-z0-9.\-]{4})")
    _HOLD = Hold(max_len, r"A-Za-z0-9._%+\-@", 1)

    def hold(self, text: str) -> int:
        return self._HOLD.start(text)

    def _candidate(self, text: str, at: int, consumed: int) -> Span | None:
        """The expression's match around the `@` at `at`, if any (starting at `consumed` or
        later: `finditer` does not revisit text a match took)."""
        # A local part never holds an `@`: start the search after the last one.
        floor = max(0, at - 65, text.rfind("@", max(0, at - 65), at) + 1)
        local = self._LOCAL.search(text, floor, at)
        if local is None or local.start() < consumed or at - local.start() > 64:
            return None
        domain = self._DOMAIN.match(text, at + 1)
        if domain is None or not 4 <= domain.end() - at - 1 <= 120:
            return None
        return local.start(), domain.end()

    def scan(self, text: str, pos: int = 0, final: bool = True) -> DetectorScan:
        if "@" not in text:
            return NOTHING
        hits: list[Hit] = []
        extents: list[Span] = []
        consumed = pos
        for sign in self._AT.finditer(text, pos):
            at = sign.start()
            extent = self._candidate(text, at, consumed) if at >= consumed else None
            if extent is not None:
                consumed = extent[1]
                extents.append(extent)
                end = _email_end(text, at, extent[1])
                if end is not None:
                    hits.append(Hit(extent[0], end))
        return DetectorScan(tuple(hits), tuple(extents))


def _email_end(text: str, at: int, end: int) -> int | None:
    """Where the email ends (trailing dots and hyphens dropped), if its domain is well formed."""
    domain = text[at + 1 : end].rstrip(".-")
    labels = domain.split(".")
    if len(labels) < 2 or not (2 <= len(labels[-1]) <= 24 and labels[-1].isalpha()):
        return None
    for label in labels:
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return None
    return at + 1 + len(domain)


def email_detector() -> EmailDetector:
    return EmailDetector()
