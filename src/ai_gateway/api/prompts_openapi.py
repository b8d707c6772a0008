"""The prompt template routes' part of GET /openapi.json (admin routes, under /ai and /v1).

`build_openapi` adds `PROMPT_SCHEMAS` to its component models and merges `prompt_paths()` into
its paths.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ai_gateway.prompts.spec import LabelMove, PromptCreate, RenderRequest, VersionCreate

PROMPT_SCHEMAS: list[type[BaseModel]] = [PromptCreate, VersionCreate, LabelMove, RenderRequest]

_REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_OBJECT = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}
_ERRORS = {
    "400": "The body, template, schema or variables are invalid, or the template does not "
    "render (the message says where and why; `param` names the field or variable).",
    "401": "Missing or refused credential, when authentication is on.",
    "403": "Not the master key.",
    "404": "No such template, version or label.",
    "409": "A template with this id exists already (prompt_exists).",
    "503": "The prompt store (the analytics database) is unavailable.",
}


def _body(name: str) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": _REF.format(model=name)}}}
    return {"required": True, "content": content}


def _param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_NAME_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
# The path parameters of the versioned-document routes (templates and chains).
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "prompt_id": _NAME_SCHEMA,
    "chain_id": _NAME_SCHEMA,
    "label": _NAME_SCHEMA,
    "version": {"type": "integer", "minimum": 1},
}


def operation(
    prefix: str,
    op_id: str,
    summary: str,
    ok: str,
    status: str = "200",
    body: str | None = None,
    params: tuple[str, ...] = (),
    errors: dict[str, str] = _ERRORS,
) -> dict[str, Any]:
    """One operation of a versioned-document route (templates, chains): bearer auth, a JSON
    object answer, OpenAPI errors; `params` named in PATH_SCHEMAS."""
    op: dict[str, Any] = {
        "operationId": f"{prefix.strip('/')}_{op_id}",
        "security": _SECURITY,
        "summary": summary,
        "responses": {
            status: {"description": ok, "content": dict(_OBJECT)},
            **{code: {"description": text, "content": _error()} for code, text in errors.items()},
        },
    }
    if params:
        op["parameters"] = [_param(name, PATH_SCHEMAS[name]) for name in params]
    if body is not None:
        op["requestBody"] = _body(body)
    return op


def _error() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}


def prompt_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    one = ("prompt_id",)
    for p in ("/ai", "/v1"):
        paths[f"{p}/prompts"] = {
            "post": operation(
                p,
                "create_prompt",
                "Create a prompt template with its version 1",
                "The template's head and version 1",
                "201",
                "PromptCreate",
            ),
            "get": operation(p, "list_prompts", "List prompt templates", "The templates' heads"),
        }
        paths[f"{p}/prompts/{{prompt_id}}"] = {
            "get": operation(
                p,
                "retrieve_prompt",
                "A template's head and newest version",
                "The head and newest version",
                params=one,
            )
        }
        paths[f"{p}/prompts/{{prompt_id}}/versions"] = {
            "post": operation(
                p,
                "create_prompt_version",
                "Add a version (immutable); `labels` move to it",
                "The new version",
                "201",
                "VersionCreate",
                one,
            )
        }
        paths[f"{p}/prompts/{{prompt_id}}/versions/{{version}}"] = {
            "get": operation(
                p,
                "retrieve_prompt_version",
                "One version",
                "The version",
                params=("prompt_id", "version"),
            )
        }
        paths[f"{p}/prompts/{{prompt_id}}/labels/{{label}}"] = {
            "put": operation(
                p,
                "set_prompt_label",
                "Point a label at a version",
                "The template's head",
                body="LabelMove",
                params=("prompt_id", "label"),
            )
        }
        paths[f"{p}/prompts/{{prompt_id}}/render"] = {
            "post": operation(
                p,
                "render_prompt",
                "Render a version without calling a model",
                "The rendered request",
                body="RenderRequest",
                params=one,
            )
        }
    return paths
