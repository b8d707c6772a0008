"""Turning a JSON body into a typed request, or into an error that names the field."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ai_gateway.errors import InvalidRequestError

M = TypeVar("M", bound=BaseModel)

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
        raise InvalidRequestError(text, param=param or None) from None
