from __future__ import annotations

import importlib.util

import pytest

from ai_gateway.providers.base import EmbeddingsCall
from ai_gateway.providers.local import LocalEmbeddingProvider, LocalModelNotInstalledError
from ai_gateway.routing.deployments import Deployment
from ai_gateway.schemas.embeddings import EmbeddingsRequest

DEP = Deployment(
    id="local/all-minilm-l6-v2",
    group="local/all-minilm-l6-v2",
    provider="local",
    model="all-minilm-l6-v2",
    api_base="local:",
    from_config=False,
)


async def test_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_torch(name: str, *args: object) -> object:
        return None if name == "torch" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_torch)
    provider = LocalEmbeddingProvider()
    body = {"model": "local/all-minilm-l6-v2", "input": "x"}
    call = EmbeddingsCall(body=body, parsed=EmbeddingsRequest.model_validate(body))
    with pytest.raises(LocalModelNotInstalledError) as info:
        await provider.embeddings(DEP, call)
    assert info.value.status == 501
    assert "pip install 'devmentor-ai-gateway[local]'" in info.value.message
    await provider.aclose()
