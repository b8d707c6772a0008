"""The code-generation flow's last step: a model's answer (text with fenced code blocks) as files
and an explanation, each file's syntax checked where a parser is at hand.

A file is a fenced block. Its path is, in this order: the fence's own (```python src/app.py or
```python path=src/app.py), a path alone on the line before the fence (`src/app.py`, **src/app.py**,
File: src/app.py, # src/app.py), the only file the request named, or `snippet-N.<ext>`. Its
language is the fence's, else the path's extension's, else the request's. The explanation is the
answer without its code blocks. A block left open at the end of the answer (a cut answer) is
still a file, marked so by its check.

Checks parse and never run anything: Python (`ast.parse`), JSON, YAML (`yaml.safe_load`) and TOML.
Other languages are `unchecked`.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import orjson
import yaml

Check = Literal["ok", "error", "unchecked"]

_FENCE_OPEN = re.compile(r"^\s*(```+|~~~+)\s*([\w+#.-]*)\s*(?:path=)?([^\s`]*)\s*$")
_PATH_LINE = re.compile(
    r"^\s*(?:#+\s*|//\s*|(?:file(?:name)?|path)\s*:\s*)?[*`_]*([\w./-]+\.\w+)[*`_:]*\s*$",
    re.IGNORECASE,
)
EXTENSIONS = {
    "py": "python",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "js": "javascript",
    "mjs": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "jsx": "javascript",
    "rs": "rust",
    "go": "go",
    "java": "java",
    "kt": "kotlin",
    "rb": "ruby",
    "c": "c",
    "h": "c",
    "cpp": "cpp",
    "cs": "csharp",
    "sh": "bash",
    "sql": "sql",
    "html": "html",
    "css": "css",
    "md": "markdown",
}
_ALIASES = {
    "py": "python",
    "python3": "python",
    "yml": "yaml",
    "js": "javascript",
    "ts": "typescript",
    "sh": "bash",
    "shell": "bash",
    "rs": "rust",
}
_SUFFIX = {language: ext for ext, language in reversed(list(EXTENSIONS.items()))}


@dataclass(frozen=True, slots=True)
class CodeFile:
    path: str
    language: str
    content: str
    check: Check
    error: str | None = None  # the parser's message, with its line, when check is "error"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "path": self.path,
            "language": self.language,
            "content": self.content,
            "check": self.check,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Formatted:
    files: tuple[CodeFile, ...]
    explanation: str

    def to_json(self) -> dict[str, object]:
        return {"files": [f.to_json() for f in self.files], "explanation": self.explanation}


def format_answer(
    text: str,
    language: str | None,
    named: tuple[str, ...] = (),
    around: tuple[str, str] | None = None,
) -> Formatted:
    """`language`: the request's; `named`: the paths of the files the request gave; `around`:
    fill in the middle's prefix and suffix (a block is then checked between them)."""
    files: list[CodeFile] = []
    prose: list[str] = []
    lines = text.splitlines()
    at = 0
    while at < len(lines):
        opened = _FENCE_OPEN.match(lines[at])
        if opened is None:
            prose.append(lines[at])
            at += 1
            continue
        fence, fence_language, fence_path = opened.groups()
        body: list[str] = []
        at += 1
        closed = False
        while at < len(lines):
            if lines[at].strip().startswith(fence[:3]) and lines[at].strip().strip(fence[0]) == "":
                closed = True
                at += 1
                break
            body.append(lines[at])
            at += 1
        path = fence_path or _path_above(prose)
        if not fence_path and path is not None:
            prose.pop()  # the path line belongs to the file
        content = "\n".join(body) + ("\n" if body else "")
        lang = _language(fence_language, path, language)
        path = path or _fallback_path(named, len(files) + 1, lang)
        checked = content if around is None else around[0] + content + around[1]
        check, error = check_syntax(lang, checked)
        if not closed:
            check, error = "error", "the answer ended inside this code block (cut short)"
        files.append(CodeFile(path, lang, content, check, error))
    explanation = "\n".join(prose).strip()
    explanation = re.sub(r"\n{3,}", "\n\n", explanation)
    return Formatted(tuple(files), explanation)


def check_syntax(language: str, content: str) -> tuple[Check, str | None]:
    try:
        if language == "python":
            ast.parse(content)
        elif language == "json":
            orjson.loads(content)
        elif language == "yaml":
            list(yaml.safe_load_all(content))
        elif language == "toml":
            tomllib.loads(content)
        else:
            return "unchecked", None
    except SyntaxError as exc:
        return "error", f"line {exc.lineno}: {exc.msg}"
    except orjson.JSONDecodeError as exc:
        return "error", f"line {exc.lineno}: {exc.msg}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        return "error", where + str(getattr(exc, "problem", None) or exc)
    except tomllib.TOMLDecodeError as exc:
        return "error", str(exc)
    return "ok", None


def _path_above(prose: list[str]) -> str | None:
    if not prose:
        return None
    match = _PATH_LINE.match(prose[-1])
    return match.group(1) if match is not None else None


def _language(fence: str, path: str | None, requested: str | None) -> str:
    if fence:
        lowered = fence.lower()
        return _ALIASES.get(lowered, lowered)
    if path is not None:
        found = EXTENSIONS.get(PurePosixPath(path).suffix.lstrip(".").lower())
        if found is not None:
            return found
    if requested:
        lowered = requested.lower()
        return _ALIASES.get(lowered, lowered)
    return "text"


def _fallback_path(named: tuple[str, ...], n: int, language: str) -> str:
    if len(named) == 1 and n == 1:
        return named[0]
    return f"snippet-{n}.{_SUFFIX.get(language, 'txt')}"
