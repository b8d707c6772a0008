"""Embeddings requests as batchEmbedContents batches, the answers as vectors; upstream URLs."""

from __future__ import annotations

from typing import Any

import pytest

from ai_gateway import errors
from ai_gateway.providers import gemini_embeddings as emb
from ai_gateway.providers.gemini import method_url
from ai_gateway.routing.deployments import Deployment
from ai_gateway.schemas.embeddings import EmbeddingsRequest

DEP = Deployment(id="e/0", group="e", provider="gemini", model="text-embedding-004", api_base="u")


def request(value: Any, **extra: Any) -> EmbeddingsRequest:
    return EmbeddingsRequest.model_validate({"model": "e", "input": value, **extra})


def test_text_inputs() -> None:
    assert emb.texts(request("one")) == ["one"]
    assert emb.texts(request(["one", "", "three"])) == ["one", "", "three"]


@pytest.mark.parametrize("value", [[1, 2, 3], [[1, 2], [3]]])
def test_token_ids_are_a_clear_400(value: Any) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        emb.texts(request(value))
    assert (info.value.status, info.value.param) == (400, "input")
    assert "text only" in info.value.message


def test_batches_hold_at_most_100_requests_in_order() -> None:
    inputs = [f"t{i}" for i in range(250)]
    bodies = emb.batches("text-embedding-004", inputs, 64)
    assert [len(b["requests"]) for b in bodies] == [100, 100, 50]
    sent = [r["content"]["parts"][0]["text"] for b in bodies for r in b["requests"]]
    assert sent == inputs
    assert bodies[0]["requests"][0] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "t0"}]},
        "outputDimensionality": 64,
    }
    assert "outputDimensionality" not in emb.batches("m", ["x"], None)[0]["requests"][0]


def test_vectors() -> None:
    data = {"embeddings": [{"values": [0.5, -1, 2.25]}, {"values": [0, 0, 1]}]}
    assert emb.vectors(DEP, data, 2) == [[0.5, -1.0, 2.25], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize(
    "data",
    [
        {"embeddings": [{"values": [0.5]}]},
        {"embeddings": [{"values": [0.5]}, {"values": ["x"]}]},
        {"embeddings": [{"values": [0.5]}, {"values": [True]}]},
        {"embedding": {"values": [0.5]}},
        [],
    ],
)
def test_missing_or_malformed_vectors_are_a_protocol_error(data: object) -> None:
    with pytest.raises(errors.UpstreamProtocolError):
        emb.vectors(DEP, data, 2)


@pytest.mark.parametrize(
    ("base", "model", "url"),
    [
        ("https://g.test", "gemini-2.5-flash", "https://g.test/v1beta/models/gemini-2.5-flash:m"),
        (
            "https://g.test/",
            "models/gemini-2.5-flash",
            "https://g.test/v1beta/models/gemini-2.5-flash:m",
        ),
        ("https://g.test/v1beta/", "gemini-x", "https://g.test/v1beta/models/gemini-x:m"),
        (
            "http://h:1/proxy",
            "../../files?key=1",
            "http://h:1/proxy/v1beta/models/..%2F..%2Ffiles%3Fkey%3D1:m",
        ),
    ],
)
def test_method_urls(base: str, model: str, url: str) -> None:
    deployment = Deployment(id="x", group="x", provider="gemini", model=model, api_base=base)
    assert method_url(deployment, "m") == url
