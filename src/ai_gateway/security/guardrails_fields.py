"""Which parts of a request and of an answer the content rules read, and how redactions are put
back into them.

Deny by default: every string of a request body reaches the upstream as text (the Chat
Completions schema is open, so OpenAI-compatible upstreams get fields this gateway does not
know), so every string is scanned: message `content` and its parts of any type, `name`,
`refusal`, `tool_calls` and legacy `function_call` arguments, `image_url` URLs; top-level
`user`, `metadata`, `stop`, `prediction`, tool descriptions and parameter schemas,
`response_format` schemas; an embeddings request's `input`. Object keys are text too (a schema
property or a metadata key) unless they are one of the API's own field names. Not scanned:

- the top-level `model` (a routing name, replaced by the deployment's model) and a message's
  `role` (one of six words, checked by the schema);
- base64 payloads, which are not text: data URLs (`data:<type>;base64,...`) in `image_url.url`
  or `file.file_data`, and `input_audio.data`, when they hold only base64 characters.

In `messages[i]` the rules for the message's role apply; everywhere else the rules without
`roles`. For an answer, every string of `choices[i].message` is scanned (content, refusal,
reasoning, tool-call arguments, ...).

A `Finding`'s location is the field's path (`messages[0].name`, `stop[1]`,
`tools[0].function.parameters.properties.*.description`); a key that is not a field name of the
API is written `*` (it may be the sensitive text itself), and the key as a text is `<path>.*key`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.security.guardrails_scan import CompiledRule, DirectionScanner, Finding

# The API's own field names (requests, messages, parts, tools, answers) and JSON-schema keywords:
# as object keys they are structure, not the caller's text.
FIELD_NAMES = frozenset({
    "model", "messages", "stream", "stream_options", "include_usage", "temperature", "top_p",
    "n", "max_tokens", "max_completion_tokens", "stop", "presence_penalty", "frequency_penalty",
    "seed", "user", "tools", "tool_choice", "parallel_tool_calls", "response_format",
    "logprobs", "top_logprobs", "metadata", "prediction", "store", "service_tier", "modalities",
    "audio", "voice", "reasoning_effort", "logit_bias", "web_search_options", "verbosity",
    "role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal", "id",
    "index", "type", "text", "image_url", "url", "detail", "input_audio", "data", "format",
    "file", "file_data", "file_id", "filename", "function", "arguments", "description",
    "parameters", "strict", "json_schema", "schema", "input", "encoding_format", "dimensions",
    "reasoning", "reasoning_content", "annotations", "transcript", "properties", "items",
    "required", "enum", "const", "default", "title", "additionalProperties", "anyOf", "oneOf",
    "allOf", "$ref", "$defs", "definitions", "minimum", "maximum", "minLength", "maxLength",
    "minItems", "maxItems", "pattern", "examples", "nullable", "extra_content",
})  # fmt: skip


_ROLE = frozenset({"role"})  # one of six words (the schema checks it): not the caller's text


_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def is_binary(key: str, value: str, parent: str) -> bool:
    """A base64 payload rather than text: `input_audio.data`, or a `data:...;base64,` URL in a
    `url` or `file_data` field, whose payload holds only base64 characters (so no word, email
    or sentence hides behind the prefix)."""
    if key == "data" and parent.endswith("input_audio"):
        payload = value
    elif key in ("url", "file_data") and value.startswith("data:"):
        head, comma, payload = value.partition(",")
        if not comma or not head.endswith(";base64"):
            return False
    else:
        return False
    return _BASE64.fullmatch(payload) is not None


def text_size(value: Any) -> int:
    """The characters of every string in a JSON value (what a scan of it reads, at most)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + text_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(text_size(item) for item in value)
    return 0


@dataclass(slots=True)
class Collector:
    """One call's findings; each method scans a part and returns its redacted copy, or None
    when unchanged. Scanning stops at the first `block` finding."""

    scanner: DirectionScanner
    findings: list[Finding] = field(default_factory=list)
    blocked: Finding | None = None

    def text(self, text: str, location: str, rules: Sequence[CompiledRule]) -> str | None:
        outcome = self.scanner.scan(text, location, rules)
        self.findings.extend(outcome.findings)
        if self.blocked is None:
            self.blocked = outcome.blocked
        return outcome.text if outcome.redacted else None

    def value(self, value: Any, location: str, rules: Sequence[CompiledRule]) -> Any:
        """Every string in `value` (a JSON value at `location`)."""
        if isinstance(value, str):
            return self.text(value, location, rules) if value else None
        if isinstance(value, list):
            items: list[Any] | None = None
            for i, item in enumerate(value):
                if self.blocked is not None:
                    break
                new = self.value(item, f"{location}[{i}]", rules)
                if new is not None:
                    items = list(value) if items is None else items
                    items[i] = new
            return items
        if isinstance(value, dict):
            return self.fields(value, location, rules)
        return None

    def fields(
        self,
        obj: dict[str, Any],
        location: str,
        rules: Sequence[CompiledRule],
        skip: frozenset[str] = frozenset(),
    ) -> dict[str, Any] | None:
        """Every key (other than the API's field names) and value of an object, except the
        `skip` fields and base64 payloads."""
        changed: dict[str, Any] = {}
        renamed: dict[str, str] = {}
        for key, item in obj.items():
            if self.blocked is not None:
                break
            if key in skip or (isinstance(item, str) and is_binary(key, item, location)):
                continue
            known = key in FIELD_NAMES
            where = f"{location}.{key if known else '*'}" if location else (key if known else "*")
            if not known:
                new_key = self.text(key, f"{where}key", rules)
                if new_key is not None:
                    renamed[key] = new_key
            new = self.value(item, where, rules)
            if new is not None:
                changed[key] = new
        if not changed and not renamed:
            return None
        # A redacted key that equals another key replaces it (as the upstream's JSON would).
        return {renamed.get(k, k): changed.get(k, v) for k, v in obj.items()}

    def messages(self, messages: list[Any], location: str) -> list[Any] | None:
        """Chat messages, each with the rules for its role."""
        out: list[Any] | None = None
        for i, message in enumerate(messages):
            if self.blocked is not None:
                break
            where = f"{location}[{i}]"
            if isinstance(message, dict):
                rules = self.scanner.rules_for(message.get("role"))
                new = self.fields(message, where, rules, _ROLE) if rules else None
            else:
                new = self.value(message, where, self.scanner.rules_for(None))
            if new is not None:
                out = list(messages) if out is None else out
                out[i] = new
        return out

    def request(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """A request body: `messages` by role, every other field but `model` with the rules
        without roles."""
        new: dict[str, Any] | None = None
        messages = body.get("messages")
        if isinstance(messages, list):
            changed = self.messages(messages, "messages")
            if changed is not None:
                new = {**body, "messages": changed}
        rules = self.scanner.rules_for(None)
        if self.blocked is None and rules:
            rest = self.fields(new or body, "", rules, skip=frozenset({"model", "messages"}))
            if rest is not None:
                new = rest
        return new
