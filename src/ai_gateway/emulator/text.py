"""Deterministic text, token counting and JSON placeholders shared by all three providers.

The token rule (identical for OpenAI, Anthropic and Gemini, streaming or not):

* text counts one token per whitespace-separated word: ``len(text.split())``;
* every input message / turn, the system prompt included, adds ``MESSAGE_OVERHEAD_TOKENS``;
* every image (or other binary attachment) in the input counts ``IMAGE_TOKENS``;
* every declared tool / function adds ``TOOL_DEFINITION_TOKENS``;
* a tool call, in the input or the output, counts ``tool_call_tokens(name, arguments)``:
  the words of its name plus the words of ``json.dumps(arguments)``;
* a tool result counts the words of its text (JSON-dumped when it is structured);
* generated text counts one token per streamed piece; a piece is one word with the
  whitespace that follows it, so ``count_tokens(text) == len(split_pieces(text))``;
* embeddings count the words of each input string (or the number of token ids), no overhead;
* prompt caching (Anthropic only, see ``anthropic_cache``) splits the input count without
  changing it: the tokens of a prefix that ends at a ``cache_control`` block and holds at
  least 1024 tokens are ``cache_creation_input_tokens`` the first time the emulator sees that
  prefix and ``cache_read_input_tokens`` after that; ``input_tokens`` is the rest.

Generated text is ``"Emulated reply to: <first 8 words of the last user text> <filler>"``;
after a tool result it is ``"Emulated reply to tool result: <first 32 words of the results>
<filler>"``.  The filler is ``DEFAULT_FILLER_WORDS`` words of lorem ipsum (rotated by the
choice index), or N words when the user text holds the marker ``[[words:N]]``.
The marker ``[[parallel_tools]]`` in the user text asks for a parallel call of two tools, and
``[[reply:<urlsafe base64>]]`` for that text as the reply, verbatim (a scripted answer, e.g. code).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

MESSAGE_OVERHEAD_TOKENS = 3
IMAGE_TOKENS = 85
TOOL_DEFINITION_TOKENS = 10
SNIPPET_WORDS = 8
RESULT_SNIPPET_WORDS = 32
DEFAULT_FILLER_WORDS = 8
MAX_FILLER_WORDS = 4096
FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
PARALLEL_TOOLS_MARKER = "[[parallel_tools]]"
_WORDS_MARKER = re.compile(r"\[\[words:(\d+)\]\]")
_REPLY_MARKER = re.compile(r"\[\[reply:([A-Za-z0-9_=-]+)\]\]")
_MARKERS = re.compile(r"\[\[(?:parallel_tools|words:\d+|reply:[A-Za-z0-9_=-]+)\]\]")
_PIECE = re.compile(r"\S+\s*")
_MAX_SCHEMA_DEPTH = 8


def count_tokens(text: str) -> int:
    """The emulator's token count of a piece of text: its whitespace-separated words."""
    return len(text.split())


def split_pieces(text: str) -> list[str]:
    """Split text into stream pieces (one word plus its trailing whitespace each)."""
    return _PIECE.findall(text)


def tool_call_tokens(name: str, arguments: Mapping[str, Any]) -> int:
    """Tokens of one tool call: words of the name plus words of its JSON arguments."""
    return count_tokens(name) + count_tokens(json.dumps(arguments))


def wants_parallel_tools(text: str) -> bool:
    return PARALLEL_TOOLS_MARKER in text


def filler_length(text: str) -> int:
    match = _WORDS_MARKER.search(text)
    if match is None:
        return DEFAULT_FILLER_WORDS
    return min(int(match.group(1)), MAX_FILLER_WORDS)


def snippet(text: str, words: int) -> str:
    """The first ``words`` words of ``text`` with emulator markers removed."""
    return " ".join(_MARKERS.sub(" ", text).split()[:words])


def scripted_reply(text: str) -> str | None:
    """The reply the marker ``[[reply:<urlsafe base64 of UTF-8 text>]]`` asks for, verbatim."""
    match = _REPLY_MARKER.search(text)
    if match is None:
        return None
    try:
        return base64.urlsafe_b64decode(match.group(1)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def compose_reply(subject: str, *, markers: str, choice: int, tool_result: bool) -> str:
    """The full (untruncated) reply text for one choice."""
    scripted = scripted_reply(markers)
    if scripted is not None and not tool_result:
        return scripted
    if tool_result:
        head = "Emulated reply to tool result:"
        quoted = snippet(subject, RESULT_SNIPPET_WORDS)
    else:
        head = "Emulated reply to:"
        quoted = snippet(subject, SNIPPET_WORDS)
    count = filler_length(markers)
    filler = [FILLER[(choice + i) % len(FILLER)] for i in range(count)]
    return " ".join(word for word in [head, quoted, *filler] if word)


def apply_limits(
    text: str, stop: Sequence[str], max_tokens: int | None
) -> tuple[str, str, str | None]:
    """Cut ``text`` at the earliest stop sequence, then at ``max_tokens`` pieces.

    Returns ``(text, reason, matched_stop)`` where reason is ``"stop"``,
    ``"stop_sequence"`` or ``"length"``.
    """
    reason, matched = "stop", None
    best: tuple[int, str] | None = None
    for sequence in stop:
        index = text.find(sequence) if sequence else -1
        if index >= 0 and (best is None or index < best[0]):
            best = (index, sequence)
    if best is not None:
        text, reason, matched = text[: best[0]], "stop_sequence", best[1]
    pieces = split_pieces(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        return "".join(pieces[:max_tokens]).rstrip(), "length", None
    return text, reason, matched


def stable_id(prefix: str, *parts: object, length: int = 24) -> str:
    """A deterministic identifier derived from ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return prefix + digest[:length]


def split_fragments(text: str, size: int = 6) -> list[str]:
    """Split a JSON string into fixed-size fragments (for streamed tool arguments)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def embedding_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text``; values are exact float32 numbers."""
    raw = b""
    counter = 0
    while len(raw) < dim * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dim}I", raw[: dim * 4])
    values = [(i / 2**32) * 2.0 - 1.0 for i in ints]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    packed = struct.pack(f"<{dim}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dim}f", packed))


def pack_float32(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def schema_placeholder(schema: Any, *, all_properties: bool) -> Any:
    """A value that satisfies a JSON schema (or a Gemini OpenAPI-style schema).

    Objects get their ``required`` properties (all properties when ``all_properties``);
    strings are ``"example"`` (or a value fitting their ``format``), integers ``1``,
    numbers ``1.5``, booleans ``true``, arrays one element; ``enum``/``const``/``default``
    win when present.
    """
    return _placeholder(schema, schema, all_properties, 0)


def _resolve(schema: Mapping[str, Any], root: Any) -> Any:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/") or not isinstance(root, Mapping):
        return {}
    node: Any = root
    for key in ref[2:].split("/"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _placeholder(schema: Any, root: Any, all_properties: bool, depth: int) -> Any:
    if not isinstance(schema, Mapping) or depth > _MAX_SCHEMA_DEPTH:
        return "example"
    if "$ref" in schema:
        return _placeholder(_resolve(schema, root), root, all_properties, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            chosen = next(
                (o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")),
                options[0],
            )
            return _placeholder(chosen, root, all_properties, depth + 1)
    kind = _schema_type(schema)
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = schema.get("required")
        names = list(props) if all_properties else (required if isinstance(required, list) else [])
        return {
            str(n): _placeholder(props.get(n, {}), root, all_properties, depth + 1) for n in names
        }
    if kind == "array":
        return [_placeholder(schema.get("items", {}), root, all_properties, depth + 1)]
    return _scalar(kind, schema)


def _clamp(value: float, schema: Mapping[str, Any]) -> float:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float) and value < low:
        value = low
    if isinstance(high, int | float) and value > high:
        value = high
    return value


def _scalar(kind: str, schema: Mapping[str, Any]) -> Any:
    if kind == "integer":
        return int(_clamp(1, schema))
    if kind == "number":
        return float(_clamp(1.5, schema))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    formats = {
        "date-time": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "email": "user@example.com",
        "uri": "https://example.com",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    return formats.get(str(schema.get("format", "")), "example")
