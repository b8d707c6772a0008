"""Gemini ``embedContent`` / ``batchEmbedContents`` and ``GET /v1beta/models[/{model}]``.

Vectors are the emulator's deterministic unit vectors (see :func:`text.embedding_vector`),
``outputDimensionality`` long (default: the settings' ``embedding_dim``).  The embedding
responses carry no usage, so the statistics record no tokens for them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from ai_gateway.emulator import catalog
from ai_gateway.emulator.faults import Fault
from ai_gateway.emulator.flow import Answer, Dialect, EmulatorError, serve_listing
from ai_gateway.emulator.gemini_parse import field, invalid, not_found, split_target
from ai_gateway.emulator.state import state_of
from ai_gateway.emulator.text import embedding_vector

MAX_BATCH = 100


def _vector(request: Any, where: str, default_dim: int) -> dict[str, Any]:
    content = field(request, "content")
    parts = field(content, "parts")
    if not isinstance(parts, list) or not parts:
        raise invalid(f"* {where}.content: content is not specified\n")
    text = " ".join(str(field(p, "text")) for p in parts if isinstance(field(p, "text"), str))
    dim = field(request, "outputDimensionality") or default_dim
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 3072:
        raise invalid(f"* {where}.output_dimensionality: must be in range [1, 3072].\n")
    return {"values": embedding_vector(text, dim)}


async def build(request: web.Request, body: Any, fault: Fault | None) -> Answer:
    model, method = split_target(request)
    info = catalog.find("gemini", model)
    if info is None or not info.embedding:
        raise not_found(model, method)
    dim = state_of(request).settings.embedding_dim
    if method == "embedContent":
        return Answer(0, 0, body={"embedding": _vector(body, "EmbedContentRequest", dim)})
    requests = field(body, "requests")
    if not isinstance(requests, list) or not requests or len(requests) > MAX_BATCH:
        raise invalid(
            f"* BatchEmbedContentsRequest.requests: must hold between 1 and {MAX_BATCH} requests.\n"
        )
    embeddings = []
    for i, item in enumerate(requests):
        where = f"BatchEmbedContentsRequest.requests[{i}]"
        if field(item, "model") != f"models/{model}":
            raise invalid(
                f"* {where}.model: the model of each request must match the model in the URL "
                f"(models/{model}).\n"
            )
        embeddings.append(_vector(item, where, dim))
    return Answer(0, 0, body={"embeddings": embeddings})


def _entry(info: catalog.ModelInfo) -> dict[str, Any]:
    methods = (
        ["embedContent", "batchEmbedContents"]
        if info.embedding
        else ["generateContent", "streamGenerateContent"]
    )
    return {
        "name": f"models/{info.id}",
        "version": "001",
        "displayName": info.display_name,
        "description": f"Emulated {info.display_name}.",
        "inputTokenLimit": info.input_limit,
        "outputTokenLimit": info.output_limit,
        "supportedGenerationMethods": methods,
    }


def _list(request: web.Request) -> Any:
    return {"models": [_entry(info) for info in catalog.models("gemini")]}


def _get(request: web.Request) -> Any:
    model = request.match_info["target"].removeprefix("models/")
    info = catalog.find("gemini", model)
    if info is None:
        raise EmulatorError(404, f"models/{model} is not found for API version v1beta")
    return _entry(info)


def add_routes(app: web.Application, dialect: Dialect) -> None:
    app.router.add_get("/v1beta/models", partial(serve_listing, dialect=dialect, build=_list))
    app.router.add_get(
        "/v1beta/models/{target}", partial(serve_listing, dialect=dialect, build=_get)
    )
