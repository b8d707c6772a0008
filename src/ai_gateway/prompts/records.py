"""What the prompt store persists: a template's head (its labels and newest version) and its
versions. Plain data; a version, once stored, never changes.

A version's `template` is a whole request shape: `messages` whose strings may hold Jinja2
expressions, and any other chat request fields it sets (`model`, `temperature`, `max_tokens`,
`tools`, `response_format`, ...). `variables` is the JSON Schema (Draft 2020-12) its variables
must satisfy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Template ids and label names: safe in a URL path, a header and a log line.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
# The label a request without a version or label uses when the template has it.
DEFAULT_LABEL = "production"


def is_name(text: str) -> bool:
    return NAME.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class PromptVersion:
    prompt_id: str
    version: int  # 1, 2, 3, ...
    template: dict[str, Any]
    variables: dict[str, Any]  # a JSON Schema
    created_at: datetime
    note: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "object": "prompt.version",
            "id": self.prompt_id,
            "version": self.version,
            "template": self.template,
            "variables": self.variables,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """A template's head: what moves (labels, and the newest version)."""

    id: str
    description: str | None
    created_at: datetime
    latest_version: int
    labels: dict[str, int] = field(default_factory=dict)  # label -> version

    def view(self) -> dict[str, Any]:
        return {
            "object": "prompt",
            "id": self.id,
            "description": self.description,
            "latest_version": self.latest_version,
            "labels": dict(sorted(self.labels.items())),
            "created_at": self.created_at.isoformat(),
        }
