"""POST /code/generate's part of GET /openapi.json (under /ai and /v1)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ai_gateway.api.openapi_sse import sse_content
from ai_gateway.schemas.code import CodeFileOut, CodeGenerateRequest, CodeGeneration

CODE_SCHEMAS: list[type[BaseModel]] = [CodeGenerateRequest, CodeGeneration, CodeFileOut]

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "The body is invalid (the message names the field), the template does not render, "
    "or the request's `project_id` needs context that this gateway does not build.",
    "401": "Missing or refused credential, when authentication is on.",
    "403": "The key may not use the model.",
    "404": "Unknown model, or no `code-generate` template under the configured label.",
    "429": "Rate limited.",
    "502": "The upstream failed.",
}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=name)}}}


def code_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix in ("/ai", "/v1"):
        paths[f"{prefix}/code/generate"] = {
            "post": {
                "operationId": f"{prefix.strip('/')}_generate_code",
                "summary": "Generate code: files with their syntax checked, and an explanation",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": _json("CodeGenerateRequest")},
                "responses": {
                    "200": {
                        "description": "The files and explanation (JSON); with `stream`, SSE "
                        'events `{"type": "delta", "text"}` then one `{"type": "result", ...}` '
                        "with the same fields, then `data: [DONE]`.",
                        "content": {
                            **_json("CodeGeneration"),
                            **sse_content(),
                        },
                    },
                    **{
                        code: {"description": text, "content": _json("ErrorResponse")}
                        for code, text in _ERRORS.items()
                    },
                },
            }
        }
    return paths
