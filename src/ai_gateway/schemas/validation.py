"""Turning a JSON body into a typed request, or into an error that names the field."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from ai_gateway.errors import InvalidRequestError
from ai_gateway.model_names import MAX_MODEL_NAME_CHARS, model_name_problem

M = TypeVar("M", bound=BaseModel)

# Validation errors of our own whose type is also the error's `code` in the 400 answer.
_CODED = frozenset({"invalid_model_name"})


def _model_name(value: str) -> str:
    problem = model_name_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_model_name", problem)
    return value


# A model name in a request (`model`, `models[]`): checked before anything uses it, because it
# reaches response headers, metric labels, logs and upstream URLs (see ai_gateway.model_names).
ModelName = Annotated[
    str,
    AfterValidator(_model_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_MODEL_NAME_CHARS,
            "pattern": r"^[A-Za-z0-9._\-/:@]+$",
        }
    ),
]

# Tags pydantic adds to an error location that are not field names.
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "literal"})


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
            continue
        if item in _TYPE_TAGS or "[" in item or item[:1].isupper() or "-" in item:
            continue
        out += f".{item}" if out else item
    return out


def parse_body(model: type[M], body: object) -> M:
    """Validate `body`; on failure raise a 400 naming the first offending field."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        # Prefer an error that explains a value over "should be a valid <type>" errors, which
        # pydantic also reports for every other member of a union the value did not match.
        specific = [e for e in errors if not e["type"].endswith("_type")] or errors
        first = min(specific, key=lambda e: len(e["loc"])) if specific else None
        if first is None:
            raise InvalidRequestError("The request body is invalid.") from None
        param = _param(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            text = f"Missing required parameter: '{param}'."
        elif param:
            text = f"Invalid value for '{param}': {message}."
        else:
            text = f"Invalid request: {message}."
        code = first["type"] if first["type"] in _CODED else None
        raise InvalidRequestError(text, param=param or None, code=code) from None
