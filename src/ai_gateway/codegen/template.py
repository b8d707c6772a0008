"""The code-generation prompt: a template of the prompt store (docs/prompts.md), created there as
version 1 of `code-generate`, labelled `production`, the first time the flow needs it and finds
none, so that an operator can add versions and move the label like any template's.

Its variables are the request's, as parsed: `language`, `instructions`, `files` ([{path,
content}]), `selection` ({path, start_line, end_line, text} or null), `prefix` and `suffix` (both
set: fill in the middle), `fim` (true then).

The system message tells the model the answer's form that `codegen/format.py` reads: every file
in its own fenced block whose opening fence names the language and the path; for fill in the
middle, only the missing code in one block.
"""

from __future__ import annotations

from typing import Any

TEMPLATE_ID = "code-generate"
DEFAULT_LABEL = "production"

_SYSTEM = """You are an expert {{ language or "software" }} engineer writing code for a developer.
{% if fim -%}
Write only the code that goes between the prefix and the suffix the user gives, in one fenced \
code block whose opening fence names the language. Do not repeat the prefix or the suffix.
{%- else -%}
Give the complete content of every file you create or change, each in its own fenced code block \
whose opening fence names the language and the file's path, like ```python src/app.py. Then \
explain the change in a few sentences. Put nothing else in code blocks.
{%- endif %}"""

_USER = """{{ instructions }}
{% for file in files %}
{{ file.path }}
```
{{ file.content }}
```
{% endfor -%}
{% if selection %}
The selection to work on, {{ selection.path }} lines {{ selection.start_line }}-\
{{ selection.end_line }}:
```
{{ selection.text }}
```
{% endif -%}
{% if fim %}
Prefix:
```
{{ prefix }}
```
Suffix:
```
{{ suffix }}
```
{% endif %}"""

TEMPLATE: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _USER},
    ],
    "temperature": 0.2,
}

_FILE = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"],
}
VARIABLES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "language": {"type": ["string", "null"]},
        "instructions": {"type": "string", "minLength": 1},
        "files": {"type": "array", "items": _FILE},
        "selection": {
            "type": ["object", "null"],
            "properties": {
                "path": {"type": "string"},
                "start_line": {"type": "integer"},
                "end_line": {"type": "integer"},
                "text": {"type": "string"},
            },
        },
        "prefix": {"type": ["string", "null"]},
        "suffix": {"type": ["string", "null"]},
        "fim": {"type": "boolean"},
    },
    "required": ["instructions", "files", "fim"],
}
DESCRIPTION = "The code-generation flow's prompt (POST /ai/code/generate)."
