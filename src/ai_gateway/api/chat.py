"""POST /ai/chat/completions and /ai/embeddings (also under /v1): read the body, build the
exchange, run the endpoint's chain (pipeline/chains.py), render the outcome (api/render.py).

A JSON answer's chain runs under `until_drained`: a client that leaves before the answer
cancels it, upstream call included; so does the end of the instance's drain time (then a 503).
A stream's chain runs inside its response (`api/render.py`, `api/event_stream.py`), which
does the same.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, read_json
from ai_gateway.api.draining import until_drained
from ai_gateway.api.render import json_answer, sse_answer
from ai_gateway.api.route_table import UNMATCHED, matched_route
from ai_gateway.errors import GatewayError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.pipeline.exchange import chat_exchange, embeddings_exchange
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits


class CompletionsAPI:
    def __init__(
        self, chains: Chains, limits: RequestLimits, body: BodyLimit, metrics: Metrics
    ) -> None:
        self._chains = chains
        self._limits = limits
        self._body = body
        self._metrics = metrics

    async def chat(self, request: Request) -> Response:
        body = await read_json(request, self._body)
        info = RequestInfo.from_scope(request.scope)
        control = request.headers.get("cache-control")
        exchange = chat_exchange(body, info, self._limits, control)
        chain = self._chains.chat
        if not exchange.stream:
            result = await until_drained(chain(exchange), request, exchange)
            assert isinstance(result, dict)
            return json_answer(result, exchange)
        return sse_answer(chain, exchange, partial(self._count_error, request))

    async def embeddings(self, request: Request) -> Response:
        body = await read_json(request, self._body)
        exchange = embeddings_exchange(body, RequestInfo.from_scope(request.scope), self._limits)
        result = await until_drained(self._chains.embeddings(exchange), request, exchange)
        assert isinstance(result, dict)
        return json_answer(result, exchange)

    def _count_error(self, request: Request, exc: GatewayError) -> None:
        """An error sent inside a stream (the response's status, 200, does not show it)."""
        route = matched_route(request.scope)
        self._metrics.observe_error(route.label if route else UNMATCHED, exc.type, exc.code)
