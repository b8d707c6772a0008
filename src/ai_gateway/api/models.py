"""GET /ai/models and /ai/models/{id}: configured model names, and provider models reachable
as `provider/<id>`, with what the model registry knows (context window, prices, capabilities)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import JSONResponse
from ai_gateway.errors import ModelNotFoundError
from ai_gateway.model_registry import ModelInfo, ModelRegistry
from ai_gateway.routing.deployments import DeploymentTable


def _card(
    public_id: str, provider: str, upstream: str, info: ModelInfo | None, created: int
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "id": public_id,
        "object": "model",
        "created": created,
        "owned_by": provider,
        "provider": provider,
        "upstream_model": upstream,
    }
    if info is not None:
        card["mode"] = info.mode
        card["context_window"] = info.context_window
        card["max_output_tokens"] = info.max_output_tokens
        card["capabilities"] = sorted(info.capabilities)
        pricing = {
            "input": info.input_price,
            "output": info.output_price,
            "cached_input": info.cached_input_price,
        }
        if any(v is not None for v in pricing.values()):
            card["pricing"] = {k: (str(v) if v is not None else None) for k, v in pricing.items()}
    return card


def build_model_cards(
    table: DeploymentTable, registry: ModelRegistry, *, local_installed: bool, demo: bool = False
) -> list[dict[str, Any]]:
    """`demo`: the configured names are served by the built-in emulator (ai_gateway/demo.py)."""
    created = int(time.time())
    cards: list[dict[str, Any]] = []
    for name, deployments in table.groups.items():
        first = deployments[0]
        info = registry.get(first.provider, first.model)
        card = _card(name, first.provider, first.model, info, created)
        if demo:
            card["owned_by"] = "ai-gateway-demo"
            card["demo"] = True
            card["description"] = (
                f"Demo: the built-in {first.provider} emulator answers with canned text, "
                "not a model. Set a provider key to use real models."
            )
        cards.append(card)
    for provider in table.direct_providers:
        if provider == "local" and not local_installed:
            continue  # listed once the optional extra is installed
        for info in registry.for_provider(provider):
            public = f"{provider}/{info.id}"
            if public not in table.groups:
                cards.append(_card(public, provider, info.id, info, created))
    return cards


class ModelsAPI:
    def __init__(self, cards: list[dict[str, Any]]) -> None:
        self._cards = {card["id"]: card for card in cards}
        self._list = JSONResponse({"object": "list", "data": cards}).body

    async def list(self, request: Request) -> Response:
        return Response(self._list, media_type="application/json")

    async def retrieve(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        card = self._cards.get(model_id)
        if card is None:
            raise ModelNotFoundError(
                f"The model '{model_id}' does not exist on this gateway. "
                "List the available models with GET /v1/models.",
                param="model",
            )
        return JSONResponse(card)
