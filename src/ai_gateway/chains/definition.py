"""A chain version, checked and compiled: its steps, their variables' expressions, their output
schemas, and the chain's own variables schema.

A step's variable is a literal (any JSON value) or a string holding Jinja2 (the prompt
sandbox, prompts/render.py) over the run's namespace: the chain's input variables by name, and
`steps.<name>`, each earlier step's output (its answer text, or its parsed JSON). A string that is
one expression (`"{{ steps.extract.city }}"`) keeps the expression's type (a number, an object,
...); any other string is rendered as text. Lists and objects are walked, their strings alike.

Checked when stored (400 naming the field): step names unique; a step refers (`steps.x`,
`steps["x"]`) only to earlier steps; at most `max_steps` steps; the chain's variables and each
JSON output's schema are JSON Schemas (Draft 2020-12); expressions parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from ai_gateway.chains.errors import ChainRequestError, ChainStepOutputError
from ai_gateway.chains.spec import JsonOutput, StepSpec
from ai_gateway.prompts.records import PromptVersion

STEPS = "steps"  # the namespace of the earlier steps' outputs
_ONE_EXPRESSION = re.compile(r"\s*\{\{(.*)\}\}\s*", re.S)
_FENCED = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?```", re.S)


class Step:
    """One compiled step: its spec, its variables compiled, its output's validator."""

    def __init__(self, spec: StepSpec, index: int, env: ImmutableSandboxedEnvironment) -> None:
        self.spec = spec
        self.index = index
        self.name = spec.name
        where = f"steps[{index}].variables"
        self._values = {k: _compile(v, env, f"{where}.{k}") for k, v in spec.variables.items()}
        self.validator: Draft202012Validator | None = None
        if isinstance(spec.output, JsonOutput):
            try:
                Draft202012Validator.check_schema(spec.output.json_schema)
            except SchemaError as exc:
                raise ChainRequestError(
                    f"Step {self.name!r}: output.json_schema is not a valid JSON Schema "
                    f"(Draft 2020-12): {exc.message}",
                    param=f"steps[{index}].output.json_schema",
                ) from None
            self.validator = Draft202012Validator(spec.output.json_schema)

    def references(self) -> Iterator[tuple[str, str]]:
        """(the variable, the step it names) for each constant `steps.x` / `steps["x"]`."""
        for name, value in self._values.items():
            for compiled in _walk(value):
                for ref in _step_refs(compiled.ast):
                    yield name, ref

    def variables(self, namespace: dict[str, Any], fail: Callable[[str, str], Exception]) -> Any:
        """The step's variables evaluated over the run's namespace; `fail(variable, problem)`
        makes the error."""
        return {k: _evaluate(v, namespace, k, fail) for k, v in self._values.items()}

    def output(self, text: str, fail: Callable[[str], ChainStepOutputError]) -> Any:
        """The step's output from its answer: the text, or the JSON it holds (alone, or in one
        fenced block) checked against the schema."""
        if self.validator is None:
            return text
        body = text.strip()
        fenced = _FENCED.fullmatch(body)
        if fenced is not None:
            body = fenced[1]
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise fail(f"its answer is not JSON ({exc.msg} at line {exc.lineno})") from None
        error = best_match(self.validator.iter_errors(value))
        if error is not None:
            at = "/".join(str(p) for p in error.absolute_path) or "the top"
            message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
            raise fail(f"its JSON does not match output.json_schema at {at}: {message}")
        return value


class CompiledChain:
    """A chain version ready to run. Raises ChainRequestError for a definition that cannot be
    used (the admin API's 400)."""

    def __init__(
        self, version: PromptVersion, env: ImmutableSandboxedEnvironment, max_steps: int
    ) -> None:
        self.version = version
        self.name = f"chain {version.prompt_id!r} version {version.version}"
        specs = [StepSpec.model_validate(s) for s in version.template.get("steps", [])]
        if not specs:
            raise ChainRequestError("A chain needs at least one step.", param="steps")
        if len(specs) > max_steps:
            raise ChainRequestError(
                f"The chain has {len(specs)} steps; this gateway allows at most {max_steps} "
                "(chains.max_steps).",
                param="steps",
                code="chain_too_many_steps",
            )
        try:
            Draft202012Validator.check_schema(version.variables)
        except SchemaError as exc:
            raise ChainRequestError(
                f"variables is not a valid JSON Schema (Draft 2020-12): {exc.message}",
                param="variables",
            ) from None
        self._inputs = Draft202012Validator(version.variables)
        self.steps: list[Step] = []
        for index, spec in enumerate(specs):
            if any(s.name == spec.name for s in self.steps):
                raise ChainRequestError(
                    f"Two steps are named {spec.name!r}: step names are unique.",
                    param=f"steps[{index}].name",
                )
            step = Step(spec, index, env)
            earlier = {s.name for s in self.steps}
            for variable, ref in step.references():
                if ref not in earlier:
                    later = any(s.name == ref for s in specs)
                    raise ChainRequestError(
                        f"Step {spec.name!r}, variable {variable!r}: steps.{ref} is "
                        + ("a later step" if later or ref == spec.name else "no step")
                        + "; a step may use only the outputs of the steps before it.",
                        param=f"steps[{index}].variables.{variable}",
                    )
            self.steps.append(step)

    def check_inputs(self, variables: dict[str, Any]) -> None:
        if STEPS in variables:
            raise ChainRequestError(
                f"'{STEPS}' is not a chain variable: it names the earlier steps' outputs.",
                param=f"variables.{STEPS}",
            )
        error = best_match(self._inputs.iter_errors(variables))
        if error is not None:
            path = ".".join(str(p) for p in error.absolute_path)
            raise ChainRequestError(
                f"The variables of {self.name}"
                + (f", at {path!r}" if path else "")
                + f": {error.message[:300]}.",
                param=f"variables.{path}" if path else "variables",
                code="invalid_chain_variables",
            )


class _Value:
    """A compiled string: one expression (its value keeps its type) or a template (text)."""

    __slots__ = ("ast", "run", "where")

    def __init__(self, run: Callable[[dict[str, Any]], Any], ast: nodes.Template, where: str):
        self.run = run
        self.ast = ast
        self.where = where


def _compile(value: Any, env: ImmutableSandboxedEnvironment, where: str) -> Any:
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            whole = _ONE_EXPRESSION.fullmatch(value)
            if whole is not None and "{{" not in whole[1] and "}}" not in whole[1]:
                expression = env.compile_expression(whole[1], undefined_to_none=False)
                return _Value(expression, env.parse("{{" + whole[1] + "}}"), where)
            return _Value(env.from_string(value).render, env.parse(value), where)
        except TemplateSyntaxError as exc:
            raise ChainRequestError(
                f"{where}: template syntax error: {exc.message}", param=where
            ) from None
    if isinstance(value, list):
        return [_compile(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _compile(v, env, f"{where}.{k}") for k, v in value.items()}
    return value


def _walk(value: Any) -> Iterator[_Value]:
    if isinstance(value, _Value):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)


def _step_refs(ast: nodes.Template) -> Iterator[str]:
    for node in ast.find_all(nodes.Getattr):
        assert isinstance(node, nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == STEPS:
            yield node.attr
    for item in ast.find_all(nodes.Getitem):
        assert isinstance(item, nodes.Getitem)
        named = isinstance(item.node, nodes.Name) and item.node.name == STEPS
        if named and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            yield item.arg.value


def _evaluate(
    value: Any, namespace: dict[str, Any], name: str, fail: Callable[[str, str], Exception]
) -> Any:
    if isinstance(value, _Value):
        try:
            result = value.run(namespace)
            if isinstance(result, Undefined):
                str(result)  # StrictUndefined: raises, naming what is undefined
        except UndefinedError as exc:
            raise fail(name, f"{exc.message}") from None
        except SecurityError as exc:
            raise fail(name, f"refused by the template sandbox: {exc}") from None
        except TemplateError as exc:
            raise fail(name, f"rendering failed: {exc.message or type(exc).__name__}") from None
        except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
            raise fail(name, f"rendering failed: {type(exc).__name__}: {exc}") from None
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            raise fail(name, f"its value is not JSON (a {type(result).__name__})") from None
        return result
    if isinstance(value, list):
        return [_evaluate(v, namespace, name, fail) for v in value]
    if isinstance(value, dict):
        return {k: _evaluate(v, namespace, name, fail) for k, v in value.items()}
    return value
