"""Keeping secrets out of anything a client, a log or a metric can see."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Common credential shapes: OpenAI/Anthropic style keys, Google API keys, bearer tokens, JWTs.
_PATTERNS = re.compile(
    r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"|(?<=Bearer )[A-Za-z0-9._~+/\-]{8,}=*)"
)

REDACTED = "[redacted]"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove the given secrets (and anything shaped like a credential) from `text`."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    return _PATTERNS.sub(REDACTED, text)
