"""A chain's definition is checked when stored (unique names, only earlier steps referred to,
the step bound, valid schemas), its step variables carry the earlier outputs with their types,
and a JSON step's answer is parsed and checked against its schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ai_gateway.chains.definition import CompiledChain
from ai_gateway.chains.errors import ChainRequestError, ChainStepOutputError
from ai_gateway.prompts.records import PromptVersion
from ai_gateway.prompts.render import sandbox

JSON_STEP = {
    "name": "extract",
    "prompt": {"id": "t"},
    "output": {"json_schema": {"type": "object", "required": ["city", "days"]}},
    "variables": {"text": "{{ text }}"},
}


def compiled(steps: list[dict[str, Any]], max_steps: int = 10, **schema: Any) -> CompiledChain:
    version = PromptVersion(
        "c", 1, {"steps": steps}, schema or {"type": "object"}, datetime.now(UTC)
    )
    return CompiledChain(version, sandbox(), max_steps)


def step(name: str, **variables: Any) -> dict[str, Any]:
    return {"name": name, "prompt": {"id": "t"}, "variables": variables}


def fail(name: str, problem: str) -> Exception:
    return ChainRequestError(f"{name}: {problem}")


def test_step_names_are_unique() -> None:
    with pytest.raises(ChainRequestError, match="Two steps are named 'a'") as caught:
        compiled([step("a"), step("a")])
    assert caught.value.param == "steps[1].name"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("{{ steps.b }}", "a later step"),
        ("{{ steps['b'] }}", "a later step"),
        ("{{ steps.a.x }}", "a later step"),  # itself
        ("Hi {{ steps.zzz }}", "no step"),
    ],
)
def test_a_step_refers_only_to_earlier_steps(expression: str, problem: str) -> None:
    with pytest.raises(ChainRequestError, match=problem) as caught:
        compiled([step("a", v=expression), step("b")])
    assert caught.value.param == "steps[0].variables.v"


def test_the_step_bound_and_schemas_are_checked() -> None:
    with pytest.raises(ChainRequestError, match=r"at most 2 \(chains.max_steps\)") as caught:
        compiled([step("a"), step("b"), step("c")], max_steps=2)
    assert caught.value.code == "chain_too_many_steps"
    bad_output = {**JSON_STEP, "output": {"json_schema": {"type": "nonsense"}}}
    with pytest.raises(ChainRequestError, match="not a valid JSON Schema"):
        compiled([bad_output])
    with pytest.raises(ChainRequestError, match="variables is not a valid JSON Schema"):
        compiled([step("a")], type=5)
    with pytest.raises(ChainRequestError, match="syntax error"):
        compiled([step("a", v="{{ text ")])


def test_variables_carry_inputs_and_earlier_outputs_with_their_types() -> None:
    chain = compiled(
        [
            JSON_STEP,
            step(
                "plan",
                city="{{ steps.extract.city }}",
                days="{{ steps.extract.days + 1 }}",
                line="Go to {{ steps.extract.city | upper }} for {{ steps['extract'].days }} days",
                nested={"who": "{{ name }}", "fixed": [1, "two"]},
                literal=3,
            ),
        ]
    )
    namespace = {"name": "Ana", "steps": {"extract": {"city": "Lisbon", "days": 3}}}
    assert chain.steps[1].variables(namespace, fail) == {
        "city": "Lisbon",
        "days": 4,
        "line": "Go to LISBON for 3 days",
        "nested": {"who": "Ana", "fixed": [1, "two"]},
        "literal": 3,
    }


def test_an_undefined_name_is_an_error_naming_the_variable() -> None:
    chain = compiled([step("a", v="{{ missing }}", w="x {{ missing }}")])
    with pytest.raises(ChainRequestError, match="v: 'missing' is undefined"):
        chain.steps[0].variables({"steps": {}}, fail)


def test_json_output_is_parsed_and_checked() -> None:
    [extract] = compiled([JSON_STEP]).steps

    def bad(problem: str) -> ChainStepOutputError:
        return ChainStepOutputError(problem)

    assert extract.output('{"city": "Lisbon", "days": 2}', bad) == {"city": "Lisbon", "days": 2}
    fenced = '```json\n{"city": "Porto", "days": 1}\n```'
    assert extract.output(fenced, bad) == {"city": "Porto", "days": 1}
    with pytest.raises(ChainStepOutputError, match="not JSON"):
        extract.output("Lisbon, I think", bad)
    with pytest.raises(ChainStepOutputError, match="'days' is a required property"):
        extract.output('{"city": "Lisbon"}', bad)
    [text] = compiled([step("a")]).steps
    assert text.output("anything", bad) == "anything"


def test_the_chain_variables_are_checked_against_its_schema() -> None:
    chain = compiled(
        [step("a")], type="object", properties={"n": {"type": "integer"}}, required=["n"]
    )
    chain.check_inputs({"n": 1})
    with pytest.raises(ChainRequestError, match="'n' is a required property"):
        chain.check_inputs({})
    with pytest.raises(ChainRequestError, match="names the earlier steps") as caught:
        chain.check_inputs({"n": 1, "steps": {}})
    assert caught.value.param == "variables.steps"
