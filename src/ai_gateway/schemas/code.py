"""POST /ai/code/generate (and /v1/code/generate): the code-generation request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_gateway.schemas.validation import ModelName

_STRICT = ConfigDict(extra="forbid", strict=True)


class SourceFile(BaseModel):
    model_config = _STRICT

    path: str = Field(min_length=1, max_length=512)
    content: str


class Selection(BaseModel):
    """Lines of one of the request's files (1-based, inclusive)."""

    model_config = _STRICT

    path: str = Field(min_length=1, max_length=512)
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Selection:
        if self.end_line < self.start_line:
            raise ValueError("end_line comes before start_line")
        return self


class CodeGenerateRequest(BaseModel):
    model_config = _STRICT

    instructions: str = Field(min_length=1, max_length=64_000)
    language: str | None = Field(default=None, pattern=r"^[A-Za-z0-9+#._-]{1,32}$")
    files: list[SourceFile] = Field(default_factory=list, max_length=64)
    selection: Selection | None = None
    prefix: str | None = None  # with `suffix`: fill in the middle
    suffix: str | None = None
    project_id: str | None = Field(default=None, min_length=1, max_length=256)
    # Vector stores to search for passages relevant to the instructions (docs/rag.md).
    vector_store_ids: list[str] | None = Field(default=None, min_length=1, max_length=10)
    model: ModelName | None = None
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @model_validator(mode="after")
    def _consistent(self) -> CodeGenerateRequest:
        if (self.prefix is None) != (self.suffix is None):
            raise ValueError("fill in the middle needs both 'prefix' and 'suffix'")
        if self.selection is not None:
            paths = {f.path for f in self.files}
            if self.selection.path not in paths:
                raise ValueError("selection.path is not the path of one of the request's files")
        return self

    @property
    def fim(self) -> bool:
        return self.prefix is not None and self.suffix is not None

    def selected_text(self) -> str | None:
        if self.selection is None:
            return None
        content = next(f.content for f in self.files if f.path == self.selection.path)
        lines = content.splitlines()
        return "\n".join(lines[self.selection.start_line - 1 : self.selection.end_line])

    def variables(self) -> dict[str, object]:
        """The code-generation template's variables (codegen/template.py)."""
        selection = None
        if self.selection is not None:
            selection = {**self.selection.model_dump(), "text": self.selected_text() or ""}
        return {
            "language": self.language,
            "instructions": self.instructions,
            "files": [f.model_dump() for f in self.files],
            "selection": selection,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "fim": self.fim,
        }


class CodeFileOut(BaseModel):
    """One file of the answer: `check` is `ok` or `error` (its parser's message in `error`)
    for Python, JSON, YAML and TOML, `unchecked` for other languages."""

    path: str
    language: str
    content: str
    check: Literal["ok", "error", "unchecked"]
    error: str | None = None


class CodeGeneration(BaseModel):
    """The answer of POST /code/generate (with `stream`: the `result` event's fields, after
    `delta` events `{"type": "delta", "text": ...}`)."""

    id: str
    object: Literal["code.generation"]
    created: int
    model: str | None
    files: list[CodeFileOut]
    explanation: str
    finish_reason: str | None
    usage: dict[str, Any] | None
