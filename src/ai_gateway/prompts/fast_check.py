"""A fast yes for the variables' JSON Schema, the common case of every templated request.

`jsonschema` spends about 7 µs on even a one-property schema (it evolves a validator per
keyword), on every templated request. Most templates' variables use a handful of keywords
(`type`, `properties`, `required`, `additionalProperties`, `items`, string enums, lengths,
bounds, `pattern`); for such a schema `compile_accept` builds a plain function that answers
whether an instance certainly conforms. It only ever says yes when `jsonschema` would: where
the two could differ (a float for "integer", an enum of non-strings, any other keyword) it says
no, or the schema gets no fast check at all (None). A no is never an error by itself: the
caller then asks `jsonschema`, which decides and explains (prompts/render.py).
"""

from __future__ import annotations

import numbers
import operator
import re
from collections.abc import Callable
from typing import Any

Accept = Callable[[Any], bool]

# Keywords that never reject anything (annotations; `format` asserts nothing without a format
# checker, and the prompt validator has none).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
    }
)
_HANDLED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
}


def _is_number(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, float)


# The JSON types as `jsonschema` checks them, narrowed where it is more lenient: "integer"
# takes no floats here (jsonschema takes 1.0) and "number" only ints and floats.
_TYPES: dict[str, Accept] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
}


class _Unsupported(Exception):
    """The schema uses something this module does not check."""


def compile_accept(schema: Any) -> Accept | None:
    """A function answering "certainly valid" for `schema` (a valid Draft 2020-12 schema), or
    None when the schema uses a keyword outside the handled set."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _compile(schema: Any) -> Accept:
    if schema is True:
        return lambda value: True
    if schema is False:
        return lambda value: False
    if not isinstance(schema, dict) or not set(schema) <= _HANDLED:
        raise _Unsupported
    checks: list[Accept] = []
    if "type" in schema:
        checks.append(_type(schema["type"]))
    if "enum" in schema:
        checks.append(_enum(schema["enum"]))
    checks += _string_checks(schema)
    checks += _number_checks(schema)
    checks += _object_checks(schema)
    checks += _array_checks(schema)
    return _all_of(checks)


def _all_of(checks: list[Accept]) -> Accept:
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)
    return lambda value: all(check(value) for check in checks)


def _type(declared: Any) -> Accept:
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not all(name in _TYPES for name in names):
        raise _Unsupported
    tests = [_TYPES[name] for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _enum(values: Any) -> Accept:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Unsupported  # equality across JSON types (1 == 1.0, True != 1) left to jsonschema
    allowed = frozenset(values)
    return lambda value: isinstance(value, str) and value in allowed


def _string_checks(schema: dict[str, Any]) -> list[Accept]:
    checks = _length(schema, "minLength", "maxLength", str)
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise _Unsupported
        search = re.compile(schema["pattern"]).search  # jsonschema uses re.search too
        checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
    return checks


_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool]], ...] = (
    ("minimum", operator.ge),
    ("maximum", operator.le),
    ("exclusiveMinimum", operator.gt),
    ("exclusiveMaximum", operator.lt),
)


def _number_checks(schema: dict[str, Any]) -> list[Accept]:
    bounds: list[tuple[Callable[[Any, Any], bool], Any]] = []
    for keyword, holds in _BOUNDS:
        if keyword in schema:
            bound = schema[keyword]
            if not _is_number(bound):
                raise _Unsupported
            bounds.append((holds, bound))
    if not bounds:
        return []

    def accept(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Number):
            return True  # bounds apply to numbers only, as in jsonschema
        if not _is_number(value):
            return False  # a number JSON does not make (a Decimal): left to jsonschema
        return all(holds(value, bound) for holds, bound in bounds)

    return [accept]


def _object_checks(schema: dict[str, Any]) -> list[Accept]:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise _Unsupported
    if not properties and not required and extra is True:
        return []
    named = {name: _compile(sub) for name, sub in properties.items()}
    other = _compile(extra)
    needed = tuple(required)

    def accept(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name in needed:
            if name not in value:
                return False
        for name, item in value.items():
            check = named.get(name, other)
            if not check(item):
                return False
        return True

    return [accept]


def _array_checks(schema: dict[str, Any]) -> list[Accept]:
    checks: list[Accept] = []
    if "items" in schema:
        each = _compile(schema["items"])
        checks.append(lambda v: not isinstance(v, list) or all(each(item) for item in v))
    return checks + _length(schema, "minItems", "maxItems", list)


def _length(
    schema: dict[str, Any], least: str, most: str, kind: type[str] | type[list[Any]]
) -> list[Accept]:
    """The bounds on a string's or an array's length (they apply to that type only)."""
    low, high = schema.get(least), schema.get(most)
    if low is None and high is None:
        return []
    lo = 0 if low is None else _count(low)
    hi = None if high is None else _count(high)
    return [lambda v: not isinstance(v, kind) or (lo <= len(v) and (hi is None or len(v) <= hi))]


def _count(bound: Any) -> int:
    if isinstance(bound, bool) or not isinstance(bound, int):
        raise _Unsupported  # 2.0 is a valid length in Draft 2020-12; not worth the doubt
    return bound
