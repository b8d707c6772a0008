"""The chain routes' part of GET /openapi.json (under /ai and /v1): the admin routes and the run.

`build_openapi` adds `CHAIN_SCHEMAS` to its component models and merges `chain_paths()`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ai_gateway.api.openapi_sse import sse_content
from ai_gateway.api.prompts_openapi import operation
from ai_gateway.chains.spec import ChainCreate, ChainRunRequest, ChainVersionCreate

CHAIN_SCHEMAS: list[type[BaseModel]] = [ChainCreate, ChainVersionCreate, ChainRunRequest]

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


def _admin(prefix: str, op_id: str, summary: str, ok: str, **options: Any) -> dict[str, Any]:
    return operation(prefix, op_id, summary, ok, errors=_ADMIN_ERRORS, **options)


def chain_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    one = ("chain_id",)
    for p in ("/ai", "/v1"):
        paths[f"{p}/chains"] = {
            "post": _admin(
                p,
                "create_chain",
                "Create a chain with its version 1",
                "The chain",
                status="201",
                body="ChainCreate",
            ),
            "get": _admin(p, "list_chains", "List chains", "The chains' heads"),
        }
        paths[f"{p}/chains/{{chain_id}}"] = {
            "get": _admin(
                p, "retrieve_chain", "A chain and its newest version", "The chain", params=one
            )
        }
        paths[f"{p}/chains/{{chain_id}}/versions"] = {
            "post": _admin(
                p,
                "create_chain_version",
                "Add a version; `labels` move to it",
                "The new version",
                status="201",
                body="ChainVersionCreate",
                params=one,
            )
        }
        paths[f"{p}/chains/{{chain_id}}/labels/{{label}}"] = {
            "put": _admin(
                p,
                "set_chain_label",
                "Point a label at a version",
                "The chain",
                body="LabelMove",
                params=("chain_id", "label"),
            )
        }
        run = operation(
            p,
            "run_chain",
            "Run a chain: each step through the whole chat pipeline",
            "The run (`chain.run`); with `stream`, SSE events `step` (when asked), "
            "`delta`, then one `result`, then `data: [DONE]`.",
            body="ChainRunRequest",
            params=one,
            errors=_RUN_ERRORS,
        )
        run["responses"]["200"]["content"].update(sse_content())
        paths[f"{p}/chains/{{chain_id}}/run"] = {"post": run}
    return paths
