"""Operator regular expressions compiled by RE2. The config file's content rules are validated
with `compile_linear` (so this is part of the settings layer); `detectors.RegexDetector` runs
what it compiles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import re2  # RE2: linear-time matching for operator patterns


class RegexMatch(Protocol):
    def span(self) -> tuple[int, int]: ...


class LinearPattern(Protocol):
    """A compiled RE2 expression (the subset of `re.Pattern` the detector uses)."""

    def finditer(self, text: str, pos: int = 0) -> Iterator[RegexMatch]: ...


class PatternError(ValueError):
    """An operator's pattern the linear-time engine cannot run (the message says why)."""


def compile_linear(pattern: str, case_sensitive: bool) -> LinearPattern:
    """`pattern` compiled by RE2, whose matching time is linear in the text whatever the pattern
    (no catastrophic backtracking). RE2 has no back-references or look-around, `\\Z` is
    written `\\z`, and `\\d`, `\\w`, `\\s` and `\\b` are ASCII-only."""
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False  # the error is raised; RE2 would also print it to stderr
    try:
        compiled: LinearPattern = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"{reason} (operator patterns run on RE2, a linear-time engine: no back-references,"
            " no look-around, `\\z` instead of `\\Z`)"
        ) from None
    return compiled
