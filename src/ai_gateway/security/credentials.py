"""The secret detector: API keys, access tokens, JWTs, private keys.

Shapes (each must not continue a preceding token):

- `sk-` + 20 or more token characters with digits and mixed case: OpenAI (`sk-`, `sk-proj-`,
  `sk-svcacct-`), Anthropic (`sk-ant-api03-...`), this gateway's own keys (`sk-gw-`);
  `sk-learn-style-words` are not keys;
- Google `AIza` + 35; AWS access key ids `AKIA`/`ASIA` + 16 capitals or digits;
- GitHub `ghp_`/`gho_`/`ghs_`/`ghu_`/`ghr_` + 30 or more, `github_pat_` + 22 or more;
- Slack `xoxa-`/`xoxb-`/`xoxp-`/`xoxr-`; Stripe `sk_live_`, `rk_live_` (and `_test_`);
- `Bearer <token>` (20 or more token characters with a digit or mixed case; the word `Bearer`
  stays, the token is redacted);
- JWT/JWE: `eyJ` and dot-separated base64url segments (at least three);
- PEM private keys: `-----BEGIN ... PRIVATE KEY-----` through `-----END ... PRIVATE KEY-----`;
  a block cut short (no END line) extends over its base64 body, so a truncated key is covered.

A token is covered to the end of its run of token characters, however long.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ai_gateway.security.detectors import Hold, PatternDetector, Shape, Span

_CHARS = r"[A-Za-z0-9_\-]"
_TOKEN_RUN = re.compile(rf"{_CHARS}*")
_JWT_RUN = re.compile(r"[A-Za-z0-9_\-.]*")
_BEARER_RUN = re.compile(r"[A-Za-z0-9._~+/=\-]*")
# A PEM body: base64 lines and the legacy encryption headers, up to and including the END line.
_PEM_BODY = re.compile(
    r"(?:[A-Za-z0-9+/=\s:,.]|-(?!----END))*(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----)?"
)


def _prefixed(prefix: str, rest: str, before: str = _CHARS) -> str:
    """`prefix` (a literal expression, so `re` searches for it fast), not preceded by `before`."""
    return rf"{prefix}(?<!{before}{prefix}){rest}"


def _mixed(skip: int, need_case: bool) -> Callable[[str], Sequence[Span]]:
    """Accept a token (after `skip` characters) with a digit and a letter, and with both cases
    when `need_case`; trailing dots (end of a sentence) are not part of it."""

    def check(text: str) -> Sequence[Span]:
        end = len(text.rstrip("."))
        body = text[skip:end]
        if not any(c.isdigit() for c in body) or not any(c.isalpha() for c in body):
            return ()
        if need_case and not (any(c.isupper() for c in body) and any(c.islower() for c in body)):
            return ()
        return ((0, end),)

    return check


def _bearer(text: str) -> Sequence[Span]:
    """The token after `earer ` (the match starts inside `Bearer`): a digit or mixed case."""
    end = len(text.rstrip("."))
    token = text[6:end]
    mixed = any(c.isupper() for c in token) and any(c.islower() for c in token)
    return ((6, end),) if mixed or any(c.isdigit() for c in token) else ()


def _jwt(text: str) -> Sequence[Span]:
    end = len(text.rstrip("."))
    parts = text[:end].split(".")
    return ((0, end),) if len(parts) >= 3 and all(parts[:2]) and len(parts[1]) >= 4 else ()


def secret_detector() -> PatternDetector:
    pem_begin = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
    shapes = [
        Shape(_prefixed("sk-", rf"{_CHARS}{{20}}"), _mixed(3, need_case=True), _TOKEN_RUN),
        Shape(_prefixed("AIza", rf"{_CHARS}{{35}}"), None, _TOKEN_RUN),
        Shape(_prefixed("AKIA", r"[A-Z0-9]{16}(?![A-Za-z0-9])", "[A-Za-z0-9]")),
        Shape(_prefixed("ASIA", r"[A-Z0-9]{16}(?![A-Za-z0-9])", "[A-Za-z0-9]")),
        Shape(_prefixed("gh[opsur]_", r"[A-Za-z0-9]{30}"), None, _TOKEN_RUN),
        Shape(_prefixed("github_pat_", r"[A-Za-z0-9_]{22}"), None, _TOKEN_RUN),
        Shape(
            _prefixed("xox[abpr]-", r"[A-Za-z0-9\-]{10}"), _mixed(5, need_case=False), _TOKEN_RUN
        ),
        Shape(_prefixed("sk_", r"(?:live|test)_[A-Za-z0-9]{16}"), None, _TOKEN_RUN),
        Shape(_prefixed("rk_", r"(?:live|test)_[A-Za-z0-9]{16}"), None, _TOKEN_RUN),
        Shape(r"earer (?<=\b[Bb]earer )[A-Za-z0-9._~+/=\-]{20}", _bearer, _BEARER_RUN),
        Shape(_prefixed("eyJ", rf"{_CHARS}{{8}}"), _jwt, _JWT_RUN),
        Shape(pem_begin, None, _PEM_BODY, lookahead=64),
    ]
    triggers = (
        "sk-", "AIza", "AKIA", "ASIA", "ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_",
        "xox", "k_live_", "k_test_", "earer ", "eyJ", "-----BEGIN",
    )  # fmt: skip
    holds = [
        Hold(72, r"A-Za-z0-9_\-", 1),  # the tokens (their extensions report themselves)
        Hold(26),  # `earer ` and 20: the space is inside the match
        Hold(66, r"A-Z0-9 \-"),  # the PEM header line
    ]
    return PatternDetector("secret", shapes, max_len=72, triggers=triggers, holds=holds)
