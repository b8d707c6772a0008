"""The prompt stage's fast paths agree with the libraries they stand in for: the variables' fast
check (prompts/fast_check.py) never accepts what jsonschema refuses and accepts the common valid
cases itself; a plain template string (text and `{{ name }}`) renders exactly as Jinja renders
it (prompts/render.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ai_gateway.prompts.fast_check import compile_accept
from ai_gateway.prompts.render import _plain_parts, _render_plain, sandbox

# JSON values, with the edge cases of the types: bools among ints, floats that are integers.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.0, 1.0, -2.5, 3.5, 1e300]),
    st.sampled_from(["", "a", "ab", "abc", "terse", "Friendly", "x1", "ÄÖ"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "tone", "n", "tags", "zz"]), inner, max_size=4),
    ),
    max_leaves=10,
)

type_names = st.sampled_from(["string", "integer", "number", "boolean", "null", "object", "array"])


def leaf_schemas() -> st.SearchStrategy[Any]:
    keyword = st.one_of(
        type_names.map(lambda t: {"type": t}),
        st.lists(type_names, min_size=1, max_size=3, unique=True).map(lambda t: {"type": t}),
        st.lists(st.sampled_from(["terse", "a", "x1"]), min_size=1, unique=True).map(
            lambda e: {"enum": e}
        ),
        st.sampled_from([{"enum": [1, True, None]}, {"const": 1}, {"format": "email"}]),
        st.integers(0, 3).map(lambda n: {"minLength": n}),
        st.integers(0, 3).map(lambda n: {"maxLength": n}),
        st.sampled_from(["^a", "[0-9]", "^$", "e"]).map(lambda p: {"pattern": p}),
        st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]).flatmap(
            lambda k: st.sampled_from([0, 1, 2.5, -1]).map(lambda b: {k: b})
        ),
        st.integers(0, 3).map(lambda n: {"minItems": n}),
        st.integers(0, 3).map(lambda n: {"maxItems": n}),
        st.sampled_from([True, False]),
    )
    return st.lists(keyword, min_size=1, max_size=3).map(_merge)


def _merge(parts: list[Any]) -> Any:
    if any(isinstance(p, bool) for p in parts):
        return next(p for p in parts if isinstance(p, bool))
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


schemas = st.recursive(
    leaf_schemas(),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(
                    st.sampled_from(["a", "b", "tone", "n", "tags"]), inner, max_size=3
                ),
            },
            optional={
                "required": st.lists(st.sampled_from(["a", "tone", "n"]), unique=True, max_size=2),
                "additionalProperties": st.one_of(st.booleans(), inner),
            },
        ),
        st.fixed_dictionaries({"items": inner}, optional={"type": st.just("array")}),
    ),
    max_leaves=6,
)


@settings(max_examples=1500, deadline=None)
@given(schema=schemas, value=values)
def test_never_accepts_what_jsonschema_refuses(schema: Any, value: Any) -> None:
    accept = compile_accept(schema)
    if accept is not None and accept(value):
        assert Draft202012Validator(schema).is_valid(value), (schema, value)


def test_common_schemas_get_a_fast_yes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tone": {"type": "string", "enum": ["terse", "friendly"]},
            "language": {"type": "string", "minLength": 1, "maxLength": 40},
            "count": {"type": "integer", "minimum": 1, "maximum": 10},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "notes": {"description": "anything"},
        },
        "required": ["tone", "language"],
        "additionalProperties": False,
    }
    accept = compile_accept(schema)
    assert accept is not None
    good = {"tone": "terse", "language": "Python", "count": 3, "tags": ["a"], "notes": [1]}
    assert accept(good)
    for bad in (
        {"language": "Python"},  # tone missing
        {"tone": "rude", "language": "Python"},
        {"tone": "terse", "language": ""},
        {"tone": "terse", "language": "Python", "count": 11},
        {"tone": "terse", "language": "Python", "count": True},
        {"tone": "terse", "language": "Python", "tags": [1]},
        {"tone": "terse", "language": "Python", "other": 1},
        ["not", "an", "object"],
    ):
        assert not accept(bad), bad
        assert not Draft202012Validator(schema).is_valid(bad), bad


def test_other_keywords_are_left_to_jsonschema() -> None:
    for schema in (
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
        {"prefixItems": [{"type": "string"}]},
        {"enum": [1, "a"]},
        {"const": "a"},
        {"minLength": 2.0},
    ):
        assert compile_accept(schema) is None, schema


PLAIN_SOURCES = [
    "You are a {{ tone }} assistant.",
    "{{tone}}",
    "{{ a }}{{ b }}",
    "  {{- a -}}  and  {{ b }}\n",
    "line one\n{{ a }}\nline three\n\n",
    "{# a comment #}Hello {{ a }}{# another #}",
    "{% raw %}{{ not a variable }}{% endraw %} {{ a }}",
    "no expression at all { but a brace }",
]


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(PLAIN_SOURCES), a=values, b=values, tone=values)
def test_plain_strings_render_as_jinja_renders_them(source: str, a: Any, b: Any, tone: Any) -> None:
    env = sandbox()
    parts = _plain_parts(env, source)
    assert parts is not None, source
    variables = {"a": a, "b": b, "tone": tone}
    assert _render_plain(parts, variables) == env.from_string(source).render(variables)


def test_other_template_strings_are_left_to_jinja() -> None:
    env = sandbox()
    for source in (
        "{{ a | upper }}",
        "{{ a.b }}",
        "{{ a['b'] }}",
        "{{ 'literal' }}",
        "{% if a %}yes{% endif %}",
        "{% for x in range(3) %}{{ x }}{% endfor %}",
        "{% set a = 1 %}{{ a }}",
    ):
        assert _plain_parts(env, source) is None, source


def test_a_missing_variable_falls_back_to_jinja() -> None:
    parts = _plain_parts(sandbox(), "Hello {{ name }}")
    assert parts is not None
    assert _render_plain(parts, {}) is None  # Jinja then raises its StrictUndefined error
