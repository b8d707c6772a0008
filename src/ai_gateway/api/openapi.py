"""GET /openapi.json: built from the same pydantic models that validate requests and describe
responses, so the document and the endpoints cannot drift apart."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ai_gateway import __version__
from ai_gateway.api.analytics_openapi import ANALYTICS_SCHEMAS, analytics_paths
from ai_gateway.api.chains_openapi import CHAIN_SCHEMAS, chain_paths
from ai_gateway.api.code_openapi import CODE_SCHEMAS, code_paths
from ai_gateway.api.messages_openapi import MESSAGES_SCHEMAS, messages_paths
from ai_gateway.api.openapi_sse import sse_content
from ai_gateway.api.prompts_openapi import PROMPT_SCHEMAS, prompt_paths
from ai_gateway.api.responses_openapi import RESPONSES_SCHEMAS, responses_paths
from ai_gateway.api.vector_stores_openapi import (
    VECTOR_STORE_OBJECTS,
    VECTOR_STORE_SCHEMAS,
    vector_store_paths,
)
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.chat_response import ChatCompletion, ChatCompletionChunk
from ai_gateway.schemas.embeddings import EmbeddingsRequest, EmbeddingsResponse
from ai_gateway.schemas.errors import ErrorResponse
from ai_gateway.schemas.models import ModelCard, ModelList
from ai_gateway.schemas.tokens import TokenCountRequest, TokenCountResponse

_REF = "#/components/schemas/{model}"
_MODELS: list[type[BaseModel]] = [
    *ANALYTICS_SCHEMAS,
    *PROMPT_SCHEMAS,
    *CODE_SCHEMAS,
    *CHAIN_SCHEMAS,
    *VECTOR_STORE_SCHEMAS,
    *RESPONSES_SCHEMAS,
    *MESSAGES_SCHEMAS,
    ChatCompletionRequest,
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelCard,
    ModelList,
    TokenCountRequest,
    TokenCountResponse,
    ErrorResponse,
]

_ERRORS = {
    "400": "Malformed JSON, a field that fails validation (invalid_model_name for a model name), "
    "a prompt template's variables that fail its schema or a template that does not render "
    "(invalid_prompt_variables, prompt_render_error; `param` names the variable), "
    "or a request limit (the message names it), a prompt too long for the model's context "
    "window (context_length_exceeded), or content refused by a content rule (content_filter).",
    "401": "Missing or refused credential (master key, virtual key or Auth-service JWT), when "
    "authentication is on.",
    "402": "The key's, user's or team's budget for the period is used up (budget_exceeded).",
    "403": "The credential may not use this model (model_not_allowed) or this admin route.",
    "404": "Unknown model (list models with GET /v1/models), or an unknown prompt template, "
    "version or label (prompt_not_found, prompt_version_not_found, prompt_label_not_found).",
    "405": "The route does not accept this HTTP method.",
    "408": "The request body did not arrive within body_timeout_s (request_timeout).",
    "413": "The request body is larger than the gateway accepts.",
    "429": "Rate limited by the gateway's own limits (rate_limit_exceeded, with x-ratelimit-* "
    "headers) or by the upstream provider (upstream_rate_limited); see Retry-After.",
    "502": "The upstream provider failed, was unreachable, or rejected the gateway's credentials.",
    "503": "The upstream provider is overloaded or unavailable, a dependency the gateway needs "
    "to check the request (key store, Auth service keys, Redis with fail_closed) is down, or "
    "the gateway has max_connections connections open (server_busy).",
    "504": "The upstream provider did not answer in time.",
    "500": "The gateway failed unexpectedly; the message quotes the request id.",
}
# Required when authentication is on (a master key or security.jwt); otherwise ignored.
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _errors() -> dict[str, Any]:
    return {
        code: {"description": text, "content": _json("ErrorResponse")}
        for code, text in _ERRORS.items()
    }


def _caller_errors() -> dict[str, Any]:
    """What any route that needs a credential may answer before its handler runs."""
    return {code: _errors()[code] for code in ("401", "503")}


def _paths_for(prefix: str) -> dict[str, Any]:
    chat_ok = {
        "description": "A chat completion, or with `stream: true` a server-sent event stream of "
        "`ChatCompletionChunk` objects (`data: {...}`) ending with `data: [DONE]`; a failure "
        'after the stream started arrives as a final `data: {"error": {...}}` event.',
        "content": {
            **_json("ChatCompletion"),
            **sse_content(_REF.format(model="ChatCompletionChunk")),
        },
    }
    return {
        f"{prefix}/chat/completions": {
            "post": {
                "operationId": f"{prefix.strip('/')}_create_chat_completion",
                "security": _SECURITY,
                "summary": "Create a chat completion (OpenAI-compatible)",
                "requestBody": {"required": True, "content": _json("ChatCompletionRequest")},
                "responses": {"200": chat_ok, **_errors()},
            }
        },
        f"{prefix}/embeddings": {
            "post": {
                "operationId": f"{prefix.strip('/')}_create_embeddings",
                "security": _SECURITY,
                "summary": "Create embeddings (OpenAI-compatible)",
                "requestBody": {"required": True, "content": _json("EmbeddingsRequest")},
                "responses": {
                    "200": {"description": "Embeddings", "content": _json("EmbeddingsResponse")},
                    **_errors(),
                },
            }
        },
        f"{prefix}/tokens/count": {
            "post": {
                "operationId": f"{prefix.strip('/')}_count_tokens",
                "summary": "Count a prompt's or texts' tokens for a model (exact or estimated)",
                "security": _SECURITY,
                "requestBody": {"required": True, "content": _json("TokenCountRequest")},
                "responses": {
                    "200": {"description": "The count", "content": _json("TokenCountResponse")},
                    **_errors(),
                },
            }
        },
        f"{prefix}/models": {
            "get": {
                "operationId": f"{prefix.strip('/')}_list_models",
                "security": _SECURITY,
                "summary": "List the models this gateway serves",
                "responses": {
                    "200": {"description": "Models", "content": _json("ModelList")},
                    **_caller_errors(),
                },
            }
        },
        f"{prefix}/models/{{model_id}}": {
            "get": {
                "operationId": f"{prefix.strip('/')}_retrieve_model",
                "security": _SECURITY,
                "summary": "Describe one model",
                "parameters": [
                    {
                        "name": "model_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "The model", "content": _json("ModelCard")},
                    "404": {"description": "Unknown model", "content": _json("ErrorResponse")},
                    **_caller_errors(),
                },
            }
        },
    }


def build_openapi() -> dict[str, Any]:
    _, schemas = models_json_schema([(model, "validation") for model in _MODELS], ref_template=_REF)
    plain = {"type": "object", "additionalProperties": True}
    paths: dict[str, Any] = {**_paths_for("/ai"), **_paths_for("/v1")}
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "summary": "Liveness",
            "responses": {
                "200": {"description": "Alive", "content": {"application/json": {"schema": plain}}}
            },
        }
    }
    paths["/health/ready"] = {
        "get": {
            "operationId": "ready",
            "summary": "Readiness: each dependency's state",
            "responses": {
                "200": {"description": "Ready", "content": {"application/json": {"schema": plain}}},
                "503": {
                    "description": "A required dependency is down",
                    "content": {"application/json": {"schema": plain}},
                },
            },
        }
    }
    paths.update(analytics_paths())
    paths.update(prompt_paths())
    paths.update(code_paths())
    paths.update(chain_paths())
    paths.update(vector_store_paths())
    paths.update(responses_paths())
    paths.update(messages_paths())
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": plain}},
                }
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "DevMentor AI Gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {**schemas["$defs"], **VECTOR_STORE_OBJECTS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "x_api_key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
