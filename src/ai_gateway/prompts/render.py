"""Rendering a template version: its variables checked against its JSON Schema (Draft 2020-12),
then every string in its messages rendered by Jinja2 in a sandbox.

The sandbox is `ImmutableSandboxedEnvironment` (no attribute starting with `_`, no method that
changes a list or dict, no access to Python internals), with `StrictUndefined` (a variable the
template names but the request did not pass is an error, never an empty string), autoescape
off (the output is a prompt, not HTML), no loader (no `include`, `import` or `extends`), and of
the globals only `range` (the sandbox's bounded one). Repeating a string or list (`*`) and
powers (`**`) are bounded, and so is the rendered text.

Every failure is a `PromptError` whose message a caller can act on: it names the template, the
version, where in the messages and what went wrong, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from ai_gateway.errors import InvalidRequestError
from ai_gateway.prompts.fast_check import compile_accept
from ai_gateway.prompts.records import PromptVersion

MAX_RENDERED_CHARS = 1_000_000  # all the rendered strings of one request together
MAX_EXPONENT = 64


class PromptError(InvalidRequestError):
    """A template or its variables that cannot be rendered (400)."""


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
            return left**right
        sized, times = (left, right) if isinstance(right, int) else (right, left)
        if (
            isinstance(sized, str | list | tuple)
            and isinstance(times, int)
            and len(sized) * times > MAX_RENDERED_CHARS
        ):
            raise SecurityError("the repeated value would be too long")
        return left * right


def sandbox() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, loader=None)
    env.globals = {"range": env.globals["range"]}
    return env


Node = Any  # a JSON value whose strings may be compiled templates


class CompiledPrompt:
    """One version, compiled once (the catalog keeps it): its messages with each string that
    holds a Jinja2 expression replaced by its compiled template, and its variables' validator.
    Raises PromptError for a syntax error or a schema that is not a JSON Schema."""

    def __init__(self, version: PromptVersion, env: ImmutableSandboxedEnvironment) -> None:
        self.version = version
        self.name = f"prompt {version.prompt_id!r} version {version.version}"
        try:
            Draft202012Validator.check_schema(version.variables)
        except SchemaError as exc:
            raise PromptError(
                f"variables is not a valid JSON Schema (Draft 2020-12): {exc.message}",
                param="variables",
            ) from None
        self._validator = Draft202012Validator(version.variables)
        self._accept = compile_accept(version.variables)  # the fast yes, when it can say it
        messages = version.template.get("messages", [])
        self._messages: Node = _compile(messages, env, "template.messages")
        # Everything but the messages, as the request sends it.
        self.fields = {k: v for k, v in version.template.items() if k != "messages"}

    def check(self, variables: dict[str, Any]) -> None:
        """PromptError naming the first variable that fails the schema."""
        if self._accept is not None and self._accept(variables):
            return
        error = best_match(self._validator.iter_errors(variables))
        if error is not None:
            name, problem = _describe(error)
            where = f"prompt.variables.{name}" if name else "prompt.variables"
            raise PromptError(
                f"Variable {name!r} of {self.name}: {problem}."
                if name
                else f"The variables of {self.name}: {problem}.",
                param=where,
                code="invalid_prompt_variables",
            )

    def render(self, variables: dict[str, Any]) -> list[Any]:
        """The rendered messages: variables checked, then every template string rendered."""
        self.check(variables)
        budget = [MAX_RENDERED_CHARS]
        rendered: list[Any] = _render(self._messages, variables, self.name, "messages", budget)
        return rendered


def _compile(node: Node, env: ImmutableSandboxedEnvironment, where: str) -> Node:
    if isinstance(node, str):
        if "{" not in node:
            return node  # no expression, statement or comment: kept as it is
        try:
            return _Compiled(env.from_string(node), where, _plain_parts(env, node))
        except TemplateSyntaxError as exc:
            raise PromptError(
                f"{where}: template syntax error on line {exc.lineno}: {exc.message}",
                param=where,
                code="invalid_prompt_template",
            ) from None
    if isinstance(node, list):
        return [_compile(item, env, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {k: _compile(v, env, f"{where}.{k}") for k, v in node.items()}
    return node


class _Compiled:
    __slots__ = ("plain", "template", "where")

    def __init__(self, template: Template, where: str, plain: Plain | None) -> None:
        self.template = template
        self.where = where.removeprefix("template.")
        self.plain = plain


# A template string that is only text and `{{ name }}` outputs (most prompts), as Jinja parsed
# it: (text, None) or ("", name) pieces. It renders as Jinja would (each value through `str`,
# the text as the lexer left it) without Jinja's per-render context; a name the variables do
# not hold goes to Jinja, which raises the StrictUndefined error (or finds a global).
Plain = tuple[tuple[str, str | None], ...]


def _plain_parts(env: ImmutableSandboxedEnvironment, source: str) -> Plain | None:
    body = env.parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts: list[tuple[str, str | None]] = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append((node.data, None))
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            parts.append(("", node.name))
        else:
            return None
    return tuple(parts)


def _render_plain(plain: Plain, variables: dict[str, Any]) -> str | None:
    pieces = []
    for text, name in plain:
        if name is None:
            pieces.append(text)
        elif name in variables:
            pieces.append(str(variables[name]))
        else:
            return None
    return "".join(pieces)


def _render(node: Node, variables: dict[str, Any], name: str, where: str, budget: list[int]) -> Any:
    if isinstance(node, _Compiled):
        text = _render_one(node, variables, name)
        budget[0] -= len(text)
        if budget[0] < 0:
            raise PromptError(
                f"{name}: the rendered messages are longer than {MAX_RENDERED_CHARS} characters.",
                param="prompt.variables",
                code="prompt_render_error",
            )
        return text
    if isinstance(node, list):
        return [_render(item, variables, name, where, budget) for item in node]
    if isinstance(node, dict):
        return {k: _render(v, variables, name, where, budget) for k, v in node.items()}
    return node


def _render_one(node: _Compiled, variables: dict[str, Any], name: str) -> str:
    fail: Callable[[str], PromptError] = lambda problem: PromptError(  # noqa: E731
        f"{name}, {node.where}: {problem}", param="prompt.variables", code="prompt_render_error"
    )
    if node.plain is not None and (text := _render_plain(node.plain, variables)) is not None:
        return text
    try:
        return node.template.render(variables)
    except UndefinedError as exc:
        raise fail(f"{_sentence(exc.message)}; pass it in prompt.variables.") from None
    except SecurityError as exc:
        raise fail(f"refused by the template sandbox: {_sentence(str(exc))}.") from None
    except TemplateError as exc:
        raise fail(f"rendering failed: {_sentence(exc.message or type(exc).__name__)}.") from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
        raise fail(f"rendering failed: {type(exc).__name__}: {_sentence(str(exc))}.") from None


def _sentence(text: str | None) -> str:
    return (text or "").strip()[:300].rstrip(".")


def _describe(error: ValidationError) -> tuple[str, str]:
    """(the variable's dotted path, what is wrong); for a missing or unexpected property, the
    property's own name."""
    path = ".".join(str(p) for p in error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [n for n in error.validator_value if n not in instance]
        if missing:
            name = f"{path}.{missing[0]}" if path else str(missing[0])
            return name, "it is required"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(n for n in instance if n not in allowed)
        if extra:
            name = f"{path}.{extra[0]}" if path else extra[0]
            return name, "the template's variables do not include it"
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    return path, message
