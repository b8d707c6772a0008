"""App assembly of the Responses API (docs/api.md, "Responses API"): the response store (the
analytics database, unless `responses.store` is off), the runner on the chat chain, the HTTP
handlers and the WebSocket mode."""

from __future__ import annotations

from dataclasses import dataclass

from ai_gateway.api.common import BodyLimit
from ai_gateway.api.responses import ResponsesAPI
from ai_gateway.api.responses_run import ResponsesRunner
from ai_gateway.api.responses_ws import ResponsesSocketAPI
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.responses.keeper import Keeper
from ai_gateway.settings import Config
from ai_gateway.stores.factory import open_response_store


@dataclass(frozen=True)
class ResponsesParts:
    api: ResponsesAPI
    socket: ResponsesSocketAPI
    keeper: Keeper

    async def start(self) -> None:
        await self.keeper.start()

    async def aclose(self) -> None:
        await self.keeper.aclose()


def build_responses(
    config: Config, chains: Chains, body: BodyLimit, metrics: Metrics
) -> ResponsesParts:
    section = config.responses
    store = open_response_store(config.gateway) if section.store else None
    keeper = Keeper(section, store)
    runner = ResponsesRunner(chains.chat, config.security.request_limits, keeper)
    return ResponsesParts(
        api=ResponsesAPI(runner, body, metrics),
        socket=ResponsesSocketAPI(config.websocket, runner, metrics),
        keeper=keeper,
    )
