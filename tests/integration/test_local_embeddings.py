"""The built-in local embedding model, through the gateway with the official SDK."""

from __future__ import annotations

import base64
import math
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")

MODEL = "local/all-minilm-l6-v2"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # vectors are unit length


@pytest.fixture(scope="module")
def local_gateway() -> Iterator[GatewayServer]:
    from ai_gateway.settings import load_config

    server = GatewayServer(load_config())
    yield server
    server.stop()


@pytest.fixture
def sdk(local_gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{local_gateway.url}/v1", api_key="x", max_retries=0) as c:
        yield c


def test_embeddings_are_real_and_normalised(sdk: openai.OpenAI) -> None:
    result = sdk.embeddings.create(
        model=MODEL,
        input=["A cat sits on the mat.", "A kitten rests on a rug.", "Quarterly tax filing rules"],
        encoding_format="float",
    )
    assert result.model == MODEL
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert result.usage.prompt_tokens > 10  # counted with the model's own tokenizer


def test_base64_matches_float(sdk: openai.OpenAI, local_gateway: GatewayServer) -> None:
    floats = sdk.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    raw = httpx.post(
        f"{local_gateway.url}/v1/embeddings",
        json={"model": MODEL, "input": "hello", "encoding_format": "base64"},
        timeout=60,
    ).json()
    decoded = struct.unpack("<384f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_concurrent_requests_are_batched_and_each_gets_its_own(sdk: openai.OpenAI) -> None:
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(24)]
    alone = {t: sdk.embeddings.create(model=MODEL, input=t).data[0].embedding for t in texts[:3]}
    results: dict[str, list[float]] = {}

    def one(text: str) -> None:
        results[text] = sdk.embeddings.create(model=MODEL, input=text).data[0].embedding

    threads = [threading.Thread(target=one, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(results) == set(texts)
    for text, vector in alone.items():
        assert results[text] == pytest.approx(vector, abs=1e-5)


def test_bad_requests(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="384"):
        sdk.embeddings.create(model=MODEL, input="x", dimensions=128)
    with pytest.raises(openai.BadRequestError, match="string"):
        sdk.embeddings.create(model=MODEL, input=[[1, 2, 3]])
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="local/no-such-model", input="x")
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])


def test_listed_with_the_registry_facts(sdk: openai.OpenAI) -> None:
    card = sdk.models.retrieve(MODEL)
    assert (card.model_extra or {})["mode"] == "embedding"


def test_embedding_work_does_not_stall_chat(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu))
    base = f"{gw.url}/v1"
    httpx.post(f"{base}/embeddings", json={"model": MODEL, "input": "warm up"}, timeout=120)
    big = [f"a longer sentence to embed, number {i}, " * 8 for i in range(600)]
    done = threading.Event()
    embed_seconds: list[float] = []

    def embed() -> None:
        started = time.monotonic()
        httpx.post(f"{base}/embeddings", json={"model": MODEL, "input": big}, timeout=120)
        embed_seconds.append(time.monotonic() - started)
        done.set()

    worker = threading.Thread(target=embed)
    worker.start()
    chat_seconds = []
    with httpx.Client(timeout=30) as c:
        while not done.is_set() and len(chat_seconds) < 200:
            started = time.monotonic()
            resp = c.post(
                f"{base}/chat/completions",
                json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert resp.status_code == 200
            chat_seconds.append(time.monotonic() - started)
    worker.join(120)
    assert embed_seconds, "the embedding request did not finish"
    assert embed_seconds[0] > 0.5, "the embedding job was too small to tell"
    assert len(chat_seconds) >= 5, "chat requests were held up behind the embedding job"
    assert sorted(chat_seconds)[len(chat_seconds) // 2] < 0.25
