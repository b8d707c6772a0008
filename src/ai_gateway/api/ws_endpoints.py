"""The model endpoints as a WebSocket runs them: the same exchanges and chains as the HTTP
handlers (`api/chat.py`, `api/code.py`), rendered as messages (`api/ws_protocol.py`) instead of
bytes. Limits, budgets, content rules, the cache and usage records apply as over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from ai_gateway.api.code import CodeAPI, code_events, formatted_answer
from ai_gateway.api.render import open_stream, visible
from ai_gateway.pipeline.chains import Chains
from ai_gateway.pipeline.exchange import Exchange, chat_exchange, embeddings_exchange
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits

# Sends one message of the request: ("chunk", data), ("done", usage) or ("response", data).
Emit = Callable[[str, Any], Awaitable[None]]
# Told each exchange a request runs (the socket's drain marks why it stopped one).
Bind = Callable[[Exchange], None]


def _unbound(exchange: Exchange) -> None:
    return None


class SocketEndpoints:
    def __init__(self, chains: Chains, limits: RequestLimits, code: CodeAPI) -> None:
        self._chains = chains
        self._limits = limits
        self._code = code

    async def run(
        self, endpoint: str, body: Any, info: RequestInfo, emit: Emit, bind: Bind = _unbound
    ) -> None:
        """Run one request; a GatewayError passes through (the caller sends it as an error)."""
        if endpoint == "chat.completions":
            await self._chat(body, info, emit, bind)
        elif endpoint == "embeddings":
            exchange = embeddings_exchange(body, info, self._limits)
            bind(exchange)
            await emit("response", await self._chains.embeddings(exchange))
        else:
            await self._generate(body, info, emit, bind)

    async def _chat(self, body: Any, info: RequestInfo, emit: Emit, bind: Bind) -> None:
        exchange = chat_exchange(body, info, self._limits)
        bind(exchange)
        chain = self._chains.chat
        if not exchange.stream:
            await emit("response", await chain(exchange))
            return
        chunks, first = await open_stream(chain, exchange)
        usage: Any = None
        try:
            chunk = first
            while chunk is not None:
                usage = chunk.get("usage") or usage
                shown = visible(chunk, exchange.include_usage)
                if shown is not None:
                    await emit("chunk", shown)
                chunk = await anext(chunks, None)
        finally:
            await chunks.aclose()  # every stage's clean-up, also when cancelled
        await emit("done", usage)

    async def _generate(self, body: Any, info: RequestInfo, emit: Emit, bind: Bind) -> None:
        exchange, formatter = await self._code.exchange(body, info)
        bind(exchange)
        if not exchange.stream:
            answer = await self._chains.chat(exchange)
            assert isinstance(answer, dict)
            await emit("response", formatted_answer(answer, formatter))
            return
        chunks, first = await open_stream(self._chains.chat, exchange)
        events: AsyncGenerator[JSONObject, None] = code_events(chunks, first, formatter)
        usage: Any = None
        try:
            async for event in events:
                usage = event.get("usage") or usage
                await emit("chunk", event)
        finally:
            await events.aclose()
            await chunks.aclose()  # (events closes it, unless it never started)
        await emit("done", usage)
