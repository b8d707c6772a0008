"""The Responses API's part of GET /openapi.json (under /ai and /v1; any caller).

`build_openapi` adds `RESPONSES_SCHEMAS` to its component models and merges `responses_paths()`.
The Response object and its events are OpenAI's (platform.openai.com's API reference); the
WebSocket mode on `/v1/responses` is not an OpenAPI operation and is described in docs/api.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ai_gateway.api.openapi_sse import sse_content
from ai_gateway.schemas.responses import ResponsesRequest

RESPONSES_SCHEMAS: list[type[BaseModel]] = [ResponsesRequest]

_REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_OBJECT = {"type": "object", "additionalProperties": True}
_ERROR = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}
_CREATE_ERRORS = {
    "400": "The body is invalid (`param` names the field), a field this gateway cannot honour "
    "(background, conversation, other tools than function and file_search), or "
    "previous_response_not_found.",
    "401": "Missing or refused credential, when authentication is on.",
    "402": "The caller's budget is spent.",
    "403": "The key may not use the model.",
    "404": "No such model, or a file_search vector store the caller cannot see.",
    "429": "Rate limited by the gateway or the upstream.",
    "502": "The upstream provider failed.",
    "503": "The upstream is unavailable, or the response store is (response_store_unavailable).",
    "504": "The upstream did not answer in time.",
}
_STORED_ERRORS = {
    "401": "Missing or refused credential, when authentication is on.",
    "404": "No such response for this caller (another caller's is a 404 too).",
    "503": "The response store is unavailable.",
}


def _op(
    prefix: str,
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    errors: dict[str, str],
    query: tuple[dict[str, Any], ...] = (),
    body: bool = False,
    one: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{prefix.strip('/')}_{op_id}",
        "security": _SECURITY,
        "summary": summary,
        "responses": {
            "200": ok,
            **{code: {"description": text, "content": _ERROR} for code, text in errors.items()},
        },
    }
    params = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    if one or query:
        op["parameters"] = [*(params if one else []), *query]
    if body:
        content = {"application/json": {"schema": {"$ref": _REF.format(model="ResponsesRequest")}}}
        op["requestBody"] = {"required": True, "content": content}
    return op


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def responses_paths() -> dict[str, Any]:
    created = {
        "description": "A Response object, or with `stream: true` its events as server-sent "
        "events (`event: response.created` ... `event: response.completed`; a failure after the "
        "stream started ends it with `response.failed`).",
        "content": {
            "application/json": {"schema": _OBJECT},
            **sse_content(),
        },
    }
    a_response = {
        "description": "The Response object",
        "content": {"application/json": {"schema": _OBJECT}},
    }
    a_list = {
        "description": "A list of items",
        "content": {"application/json": {"schema": _OBJECT}},
    }
    deleted = {"description": "Deleted", "content": {"application/json": {"schema": _OBJECT}}}
    page = (
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
        _query("order", {"type": "string", "enum": ["asc", "desc"]}),
        _query("after", {"type": "string"}),
        _query("before", {"type": "string"}),
    )
    cancel_errors = {
        **_STORED_ERRORS,
        "400": "Only background responses can be cancelled, and "
        "this gateway runs none (response_not_cancellable).",
    }
    # Found by fuzzing: a bad `order` or `limit` is a 400 the document did not list.
    list_errors = {
        **_STORED_ERRORS,
        "400": "A query parameter is invalid: `limit` (1 to 100) or `order` (asc, desc).",
    }
    paths: dict[str, Any] = {}
    for p in ("/ai", "/v1"):
        one = f"{p}/responses/{{response_id}}"
        paths[f"{p}/responses"] = {
            "post": _op(
                p,
                "create_response",
                "Create a model response (OpenAI Responses API, over any provider)",
                created,
                _CREATE_ERRORS,
                body=True,
                one=False,
            )
        }
        paths[one] = {
            "get": _op(p, "retrieve_response", "A stored response", a_response, _STORED_ERRORS),
            "delete": _op(
                p, "delete_response", "Delete a stored response", deleted, _STORED_ERRORS
            ),
        }
        paths[one + "/cancel"] = {
            "post": _op(
                p, "cancel_response", "Cancel a background response", a_response, cancel_errors
            )
        }
        paths[one + "/input_items"] = {
            "get": _op(
                p,
                "list_response_input_items",
                "The items a stored response was made from",
                a_list,
                list_errors,
                query=page,
            )
        }
    return paths
