"""The chain routes' part of GET /openapi.json (under /ai and /v1): the admin routes and the run.

`build_openapi` adds `CHAIN_SCHEMAS` to its component models and merges `chain_paths()`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ai_gateway.chains.spec import ChainCreate, ChainRunRequest, ChainVersionCreate

CHAIN_SCHEMAS: list[type[BaseModel]] = [ChainCreate, ChainVersionCreate, ChainRunRequest]

_REF = "#/components/schemas/{model}"
_OBJECT = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
_ADMIN_ERRORS = {
    "400": "The body or the definition is invalid (the message says where and why).",
    "401": "Missing or refused credential, when authentication is on.",
    "403": "Not the master key.",
    "404": "No such chain, version or label.",
    "409": "A chain with this id exists already (chain_exists).",
    "503": "The chain store (the analytics database) is unavailable.",
}
_RUN_ERRORS = {
    "400": "The body or the chain's variables are invalid, a step's variables do not render, "
    "or a step's request is refused (the message names the step).",
    "401": "Missing or refused credential, when authentication is on.",
    "402": "A step went over the caller's budget.",
    "403": "The key may not use a step's model.",
    "404": "No such chain, version or label, or a step's template is missing.",
    "429": "A step was rate limited.",
    "502": "A step's upstream failed, or its answer is not the output the step needs "
    "(chain_step_output_invalid: not JSON, or not matching its schema).",
    "504": "The run went past its time bound (chain_timeout); the steps that ran are recorded.",
}


def _error() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}


def _op(
    prefix: str,
    op_id: str,
    summary: str,
    ok: str,
    status: str = "200",
    body: str | None = None,
    params: tuple[str, ...] = (),
    errors: dict[str, str] = _ADMIN_ERRORS,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{prefix.strip('/')}_{op_id}",
        "security": [{"bearer": []}],
        "summary": summary,
        "responses": {
            status: {"description": ok, "content": dict(_OBJECT)},
            **{code: {"description": text, "content": _error()} for code, text in errors.items()},
        },
    }
    if params:
        op["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": _NAME} for name in params
        ]
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=body)}}},
        }
    return op


def chain_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    one = ("chain_id",)
    for p in ("/ai", "/v1"):
        paths[f"{p}/chains"] = {
            "post": _op(
                p,
                "create_chain",
                "Create a chain with its version 1",
                "The chain",
                "201",
                "ChainCreate",
            ),
            "get": _op(p, "list_chains", "List chains", "The chains' heads"),
        }
        paths[f"{p}/chains/{{chain_id}}"] = {
            "get": _op(
                p, "retrieve_chain", "A chain and its newest version", "The chain", params=one
            )
        }
        paths[f"{p}/chains/{{chain_id}}/versions"] = {
            "post": _op(
                p,
                "create_chain_version",
                "Add a version; `labels` move to it",
                "The new version",
                "201",
                "ChainVersionCreate",
                one,
            )
        }
        paths[f"{p}/chains/{{chain_id}}/labels/{{label}}"] = {
            "put": _op(
                p,
                "set_chain_label",
                "Point a label at a version",
                "The chain",
                body="LabelMove",
                params=("chain_id", "label"),
            )
        }
        run = _op(
            p,
            "run_chain",
            "Run a chain: each step through the whole chat pipeline",
            "The run (`chain.run`); with `stream`, SSE events `step` (when asked), "
            "`delta`, then one `result`, then `data: [DONE]`.",
            body="ChainRunRequest",
            params=one,
            errors=_RUN_ERRORS,
        )
        run["responses"]["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}
        paths[f"{p}/chains/{{chain_id}}/run"] = {"post": run}
    return paths
