"""What a model name may look like: the one rule for names clients send and names the
configuration declares.

A model name reaches response headers (`x-gateway-model`, ...), metric labels, log lines and
upstream URLs (Gemini puts the model in the path), so it is checked before anything uses it:
at most MAX_MODEL_NAME_CHARS characters, each an ASCII letter or digit or one of `. _ - / : @`.
That covers real ids such as `anthropic/claude-sonnet-4-5@20250929`,
`ft:gpt-4o-mini:org::id`, `meta-llama/Llama-3.1-8B-Instruct` and `llama3.1:8b`, and keeps out
control characters (CR, LF, NUL), spaces, commas, quotes and non-ASCII text.
"""

from __future__ import annotations

import re

MAX_MODEL_NAME_CHARS = 256
MODEL_NAME_CHARACTERS = "A-Z a-z 0-9 . _ - / : @"
_VALID = re.compile(r"[A-Za-z0-9._\-/:@]+")
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


def model_name_problem(name: str) -> str | None:
    """Why `name` is not a valid model name (a sentence naming the rule), or None if it is."""
    if not name:
        return "a model name cannot be empty"
    if len(name) > MAX_MODEL_NAME_CHARS:
        return (
            f"a model name is at most {MAX_MODEL_NAME_CHARS} characters; this one has {len(name)}"
        )
    if _VALID.fullmatch(name) is None:
        return (
            f"a model name may contain only the characters {MODEL_NAME_CHARACTERS} "
            "(no spaces, control characters or non-ASCII letters)"
        )
    if _DOT_SEGMENT.search(name) is not None:  # the name may end up in an upstream URL's path
        return "a model name cannot contain '.' or '..' as a '/'-separated segment"
    return None
