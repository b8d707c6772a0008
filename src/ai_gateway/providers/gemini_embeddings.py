"""OpenAI embeddings requests as Gemini ``batchEmbedContents`` calls, and back (pure, no I/O).

Each input string becomes one ``EmbedContentRequest`` (``model: models/<id>``, ``content.parts:
[{text}]``, ``outputDimensionality`` from ``dimensions``). Google accepts at most 100 requests
per batch, so longer inputs are sent as several batches (a few at a time) and the vectors put
back in order.
Gemini embeds text only: token-id inputs are a 400. Gemini reports no token usage for
embeddings; the provider counts input tokens with the gateway's token counter.
"""

from __future__ import annotations

from collections.abc import Sequence

from ai_gateway.errors import InvalidRequestError, UpstreamProtocolError
from ai_gateway.providers.base import JSONObject
from ai_gateway.routing.deployments import Deployment
from ai_gateway.schemas.embeddings import EmbeddingsRequest

MAX_BATCH = 100  # Google: "at most 100 requests can be in one batch"
PARALLEL_BATCHES = 4  # batches of one call in flight at once


def texts(request: EmbeddingsRequest) -> list[str]:
    value = request.input
    if isinstance(value, str):
        return [value]
    if all(isinstance(item, str) for item in value):
        return [item for item in value if isinstance(item, str)]
    raise InvalidRequestError(
        "Gemini embedding models take text only: send 'input' as a string or a list of strings, "
        "not token ids.",
        param="input",
    )


def batches(model: str, inputs: Sequence[str], dimensions: int | None) -> list[JSONObject]:
    """``batchEmbedContents`` bodies of at most `MAX_BATCH` requests each."""
    resource = f"models/{model}"
    requests: list[JSONObject] = []
    for text in inputs:
        item: JSONObject = {"model": resource, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            item["outputDimensionality"] = dimensions
        requests.append(item)
    return [
        {"requests": requests[start : start + MAX_BATCH]}
        for start in range(0, len(requests), MAX_BATCH)
    ]


def vectors(deployment: Deployment, data: object, expected: int) -> list[list[float]]:
    """The vectors of one ``BatchEmbedContentsResponse``, checked against the batch size."""
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    result: list[list[float]] = []
    for embedding in embeddings if isinstance(embeddings, list) else []:
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            break
        result.append([float(v) for v in values])
    if len(result) != expected:
        raise UpstreamProtocolError(
            f"The upstream provider (gemini, deployment '{deployment.id}') answered an "
            f"embeddings batch of {expected} inputs with {len(result)} valid vectors."
        )
    return result
