"""OpenAI ``POST /v1/embeddings`` and ``GET /v1/models[/{id}]``.

Vectors are deterministic unit vectors (see :func:`text.embedding_vector`) whose values are
exact float32 numbers, so ``encoding_format: "base64"`` (little-endian float32) decodes to
exactly the floats the ``"float"`` format returns.  Usage counts the words of each input
string (or the number of token ids) with no per-input overhead.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

from aiohttp import web

from ai_gateway.emulator import catalog
from ai_gateway.emulator.faults import Fault
from ai_gateway.emulator.flow import Answer, Dialect, EmulatorError, ModelOf, serve, serve_listing
from ai_gateway.emulator.state import state_of
from ai_gateway.emulator.text import count_tokens, embedding_vector, pack_float32

MAX_INPUTS = 2048


def _invalid(message: str, param: str | None = "input") -> EmulatorError:
    return EmulatorError(400, message, param=param)


def _is_tokens(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    )


def parse_inputs(raw: Any) -> list[tuple[str, int]]:
    """Each input as (text to embed, tokens it counts)."""
    if isinstance(raw, str) or _is_tokens(raw):
        raw = [raw]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_INPUTS:
        raise _invalid(
            "'$.input' is invalid. Please check the API reference: "
            "https://platform.openai.com/docs/api-reference."
        )
    inputs: list[tuple[str, int]] = []
    for item in raw:
        if isinstance(item, str) and item:
            inputs.append((item, count_tokens(item)))
        elif _is_tokens(item):
            inputs.append((" ".join(map(str, item)), len(item)))
        else:
            raise _invalid(
                "'$.input' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference."
            )
    return inputs


def _dimensions(body: dict[str, Any], model: str, default: int) -> int:
    value = body.get("dimensions")
    if value is None:
        return default
    if model == "text-embedding-ada-002":
        raise _invalid("This model does not support specifying dimensions.", "dimensions")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3072:
        raise _invalid("Invalid value for 'dimensions': expected an integer >= 1.", "dimensions")
    return value


async def _build(request: web.Request, body: Any, fault: Fault | None) -> Answer:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter", "model")
    inputs = parse_inputs(body.get("input"))
    if catalog.find("openai", model) is None:
        raise EmulatorError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _invalid(
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    dim = _dimensions(body, model, state_of(request).settings.embedding_dim)
    data = []
    for index, (text, _) in enumerate(inputs):
        vector = embedding_vector(text, dim)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(pack_float32(vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(t for _, t in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Answer(tokens, 0, body={"object": "list", "data": data, "model": model, "usage": usage})


def _model_entry(info: catalog.ModelInfo) -> dict[str, Any]:
    owner = "openai" if info.embedding else "system"
    return {"id": info.id, "object": "model", "created": catalog.CREATED, "owned_by": owner}


def _list(request: web.Request) -> Any:
    return {"object": "list", "data": [_model_entry(i) for i in catalog.models("openai")]}


def _retrieve(request: web.Request) -> Any:
    model = request.match_info["model"]
    info = catalog.find("openai", model)
    if info is None:
        raise EmulatorError(
            404,
            f"The model '{model}' does not exist",
            param="model",
            code="model_not_found",
        )
    return _model_entry(info)


def add_routes(app: web.Application, dialect: Dialect, model_of: ModelOf) -> None:
    async def embeddings(request: web.Request) -> web.StreamResponse:
        return await serve(request, dialect, _build, model_of)

    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", partial(serve_listing, dialect=dialect, build=_list))
    app.router.add_get(
        "/v1/models/{model}", partial(serve_listing, dialect=dialect, build=_retrieve)
    )
