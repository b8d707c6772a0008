"""Prompt templates without a server: rendering in the sandbox (escapes refused, undefined
variables an error), variables checked against the schema (errors name the variable), templates
checked when stored, and the catalog's cache (labels move, a change announced drops the head,
versions are kept)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ai_gateway.errors import ConflictError, NotFoundError
from ai_gateway.prompts.catalog import PromptCatalog
from ai_gateway.prompts.records import PromptVersion
from ai_gateway.prompts.render import CompiledPrompt, PromptError, sandbox
from ai_gateway.stores.prompts_sqlite import SQLitePromptStore

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "user": {
            "type": "object",
            "properties": {"age": {"type": "integer"}},
            "required": ["age"],
        },
    },
    "required": ["name"],
    "additionalProperties": False,
}


def compiled(
    content: Any, variables: dict[str, Any] | None = None, **fields: Any
) -> CompiledPrompt:
    template = {"messages": [{"role": "user", "content": content}], **fields}
    version = PromptVersion("t", 1, template, variables or {"type": "object"}, datetime.now(UTC))
    return CompiledPrompt(version, sandbox())


def render(content: Any, **variables: Any) -> Any:
    return compiled(content).render(variables)[0]["content"]


def test_every_string_in_the_messages_is_rendered_and_the_rest_kept() -> None:
    prompt = compiled(
        [{"type": "text", "text": "Hi {{ name | upper }}"}, {"type": "text", "text": "{x}"}],
        temperature=0.3,
    )
    assert prompt.render({"name": "ada"}) == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi ADA"}, {"type": "text", "text": "{x}"}],
        }
    ]
    assert prompt.fields == {"temperature": 0.3}
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}") == "012"
    assert render("<b>{{ v }}</b>", v="<i>&") == "<b><i>&</b>"  # no HTML escaping


@pytest.mark.parametrize(
    "content",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__init__.__globals__ }}",
        "{{ [].append(1) }}",
        "{{ {}.update(a=1) }}",
        "{{ 'x' * 10000000 }}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_sandbox_escapes_and_runaway_expressions_are_refused(content: str) -> None:
    with pytest.raises(PromptError, match="refused by the template sandbox") as caught:
        render(content, name="n")
    assert caught.value.status == 400


@pytest.mark.parametrize("name", ["cycler", "joiner", "lipsum", "namespace", "dict", "config"])
def test_no_globals_but_range(name: str) -> None:
    with pytest.raises(PromptError, match=f"'{name}' is undefined"):
        render("{{ " + name + " }}")


def test_an_undefined_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(PromptError) as caught:
        render("Hello {{ nobody }}!")
    assert "'nobody' is undefined; pass it in prompt.variables" in caught.value.message
    assert "messages[0].content" in caught.value.message
    with pytest.raises(PromptError, match="has no attribute 'missing'"):
        render("{{ user.missing }}", user={})


def test_syntax_errors_are_found_when_the_template_is_compiled() -> None:
    with pytest.raises(PromptError) as caught:
        compiled("{% if x %}unclosed")
    assert caught.value.param == "template.messages[0].content"
    assert "line 1" in caught.value.message


@pytest.mark.parametrize(
    ("variables", "param", "words"),
    [
        ({}, "prompt.variables.name", "it is required"),
        ({"name": 3}, "prompt.variables.name", "3 is not of type 'string'"),
        ({"name": ""}, "prompt.variables.name", "should be non-empty"),
        ({"name": "a", "other": 1}, "prompt.variables.other", "do not include it"),
        ({"name": "a", "user": {}}, "prompt.variables.user.age", "it is required"),
        ({"name": "a", "user": {"age": "x"}}, "prompt.variables.user.age", "'x' is not of type"),
    ],
)
def test_variables_failing_the_schema_name_the_variable(
    variables: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(PromptError) as caught:
        compiled("{{ name }}", SCHEMA).render(variables)
    assert caught.value.param == param
    assert words in caught.value.message


def test_a_schema_that_is_not_a_json_schema_is_refused() -> None:
    with pytest.raises(PromptError) as caught:
        compiled("x", {"type": "thing"})
    assert caught.value.param == "variables"


# -- the catalog -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


TEMPLATE = {"messages": [{"role": "system", "content": "v{{ n }}"}]}


def test_labels_move_and_the_catalog_serves_the_version_they_point_at(tmp_path: Path) -> None:
    async def scenario() -> None:
        announced: list[str] = []

        async def notify(prompt_id: str) -> None:
            announced.append(prompt_id)

        store = SQLitePromptStore(tmp_path / "analytics.db")
        catalog = PromptCatalog(store, notify=notify)
        try:
            await catalog.create("t", None, TEMPLATE, {}, None)
            await catalog.add_version("t", TEMPLATE, {}, "second")
            assert (await catalog.resolve("t")).version.version == 2  # newest: no production
            await catalog.set_label("t", "production", 1)
            assert (await catalog.resolve("t")).version.version == 1
            assert (await catalog.resolve("t", label="production")).version.version == 1
            assert (await catalog.resolve("t", version=2)).version.version == 2
            await catalog.set_label("t", "production", 2)
            assert (await catalog.resolve("t")).version.version == 2
            assert announced == ["t", "t", "t", "t"]
            with pytest.raises(NotFoundError, match="no label 'canary'"):
                await catalog.resolve("t", label="canary")
            with pytest.raises(NotFoundError, match="no version 3"):
                await catalog.resolve("t", version=3)
            with pytest.raises(NotFoundError, match="No prompt template 'u'"):
                await catalog.resolve("u")
            with pytest.raises(ConflictError):
                await catalog.create("t", None, TEMPLATE, {}, None)
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_another_instance_s_change_is_served_once_announced_or_the_head_expires(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock = Clock()
        store = SQLitePromptStore(tmp_path / "analytics.db")
        here = PromptCatalog(store, head_ttl_s=30, clock=clock)
        there = PromptCatalog(store)  # another instance on the same database
        try:
            await there.create("t", None, TEMPLATE, {}, None)
            await there.add_version("t", TEMPLATE, {}, None)
            await there.set_label("t", "production", 1)
            assert (await here.resolve("t")).version.version == 1
            await there.set_label("t", "production", 2)
            assert (await here.resolve("t")).version.version == 1  # cached, not announced
            here.forget("t")  # the announcement (prompts/invalidation.py)
            assert (await here.resolve("t")).version.version == 2
            await there.set_label("t", "production", 1)
            clock.now = 31  # a missed announcement costs at most the head's lifetime
            assert (await here.resolve("t")).version.version == 1
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_the_cached_answer_is_resolve_s_or_nothing(tmp_path: Path) -> None:
    """`cached` (the stage's path without an await) answers only what `resolve` would: the
    version compiled before, through a head still fresh; anything else is left to `resolve`."""

    async def scenario() -> None:
        clock = Clock()
        store = SQLitePromptStore(tmp_path / "analytics.db")
        catalog = PromptCatalog(store, head_ttl_s=30, clock=clock)
        try:
            await catalog.create("t", None, TEMPLATE, {}, None)
            await catalog.add_version("t", TEMPLATE, {}, None)
            await catalog.set_label("t", "production", 1)
            assert catalog.cached("t") is None  # nothing read yet
            assert catalog.cached("t", version=2) is None
            resolved = await catalog.resolve("t")
            assert catalog.cached("t") is resolved
            assert catalog.cached("t", label="production") is resolved
            assert catalog.cached("t", label="canary") is None  # resolve gives the 404
            assert catalog.cached("t", version=2) is None  # never compiled
            second = await catalog.resolve("t", version=2)
            assert catalog.cached("t", version=2) is second
            catalog.forget("t")  # a label moved elsewhere: the head must be read again
            assert catalog.cached("t") is None
            await catalog.resolve("t")
            clock.now = 31  # the head expired
            assert catalog.cached("t") is None
            assert catalog.cached("t", version=1) is resolved  # a version never changes
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_a_head_read_while_a_change_is_announced_is_not_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLitePromptStore(tmp_path / "analytics.db")
        catalog = PromptCatalog(store)
        try:
            await catalog.create("t", None, TEMPLATE, {}, None)
            read = asyncio.ensure_future(catalog.head("t"))
            await asyncio.sleep(0)  # the read is under way
            catalog.forget("t")
            await read
            assert "t" not in catalog._heads
        finally:
            await store.aclose()

    asyncio.run(scenario())
