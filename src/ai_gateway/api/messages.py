"""POST /v1/messages (also /ai/messages) and POST /v1/messages/count_tokens: the Anthropic
Messages API in front of any provider (docs/api.md, "Anthropic Messages API").

A parser and a renderer around the same chain as chat completions: the body is validated
(messages/schema.py) and turned into the OpenAI-shaped view the stages work on
(messages/request.py), with the client's own body beside it as the exchange's native request
(providers/native.py), so that an Anthropic deployment is sent exactly what the client sent and
any other provider its translation. The chat chain runs (limits, budgets, content rules, hooks,
cache, context, routing and fallbacks, usage records), and its outcome is rendered as Anthropic's
message or event stream (api/messages_render.py). Errors, those of authentication and the
shared stages included, are Anthropic's error JSON (the route's dialect, api/route_table.py).

Token counting uses the gateway's own counter (usage/tokens.py) on the request's view: an
estimate for Claude and Gemini models (whose tokenizers are not public), exact for OpenAI's.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, cancel_on_disconnect, read_json
from ai_gateway.api.messages_render import REQUEST_ID, message_answer, message_stream
from ai_gateway.api.render import open_stream
from ai_gateway.api.route_table import UNMATCHED, matched_route
from ai_gateway.cache.controls import CacheControl
from ai_gateway.errors import GatewayError
from ai_gateway.messages.request import to_view
from ai_gateway.messages.schema import CountTokensRequest, MessagesRequest
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.pipeline.exchange import Exchange, Kind
from ai_gateway.providers.anthropic_native import PASSED_HEADERS, PROVIDER
from ai_gateway.providers.base import ChatRequest
from ai_gateway.providers.native import NativeRequest
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.deployments import DeploymentTable
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.config import RequestLimits
from ai_gateway.security.request_limits import check_chat
from ai_gateway.usage.tokens import TokenCounter


def messages_exchange(
    body: Any, headers: Mapping[str, str], info: RequestInfo, limits: RequestLimits
) -> Exchange:
    """A Messages request's exchange: the request limits on the raw JSON (before the schema,
    bounding its work), the schema (400 naming the field), then the view and the native body."""
    check_chat(body, limits)
    parse_body(MessagesRequest, body)
    view, unsupported = to_view(body)
    parsed = parse_body(ChatCompletionRequest, view)
    passed = {name: headers[name] for name in PASSED_HEADERS if name in headers}
    native = NativeRequest(PROVIDER, body, view, passed, unsupported)
    model = str(body["model"])
    return Exchange(
        kind=Kind.CHAT,
        request=ChatRequest(body=view, parsed=parsed, native=native),
        info=info,
        model=model,
        models=(model,),
        stream=bool(body.get("stream")),
        include_usage=True,
        cache_control=CacheControl.parse(headers.get("cache-control")),
        native=native,
    )


class MessagesAPI:
    def __init__(
        self,
        chains: Chains,
        limits: RequestLimits,
        body: BodyLimit,
        metrics: Metrics,
        deployments: DeploymentTable,
        counter: TokenCounter,
    ) -> None:
        self._chains = chains
        self._limits = limits
        self._body = body
        self._metrics = metrics
        self._deployments = deployments
        self._counter = counter

    async def create(self, request: Request) -> Response:
        body = await read_json(request, self._body)
        info = RequestInfo.from_scope(request.scope)
        exchange = messages_exchange(body, request.headers, info, self._limits)
        chain = self._chains.chat
        if not exchange.stream:
            result = await cancel_on_disconnect(chain(exchange), request.receive)
            assert isinstance(result, dict)
            return message_answer(result, exchange)
        chunks, first = await cancel_on_disconnect(open_stream(chain, exchange), request.receive)
        return message_stream(chunks, first, exchange, partial(self._count_error, request))

    async def count_tokens(self, request: Request) -> Response:
        body = await read_json(request, self._body)
        check_chat(body, self._limits)
        parsed = parse_body(CountTokensRequest, body)
        view, _ = to_view(body)
        deployment = self._deployments.resolve(parsed.model)[0]
        count = self._counter.count_messages(
            deployment.provider, deployment.model, view["messages"], view.get("tools") or []
        )
        info = RequestInfo.from_scope(request.scope)
        return JSONResponse({"input_tokens": count.tokens}, headers={REQUEST_ID: info.request_id})

    def _count_error(self, request: Request, exc: GatewayError) -> None:
        """An error sent inside a stream (the response's status, 200, does not show it)."""
        route = matched_route(request.scope)
        self._metrics.observe_error(route.label if route else UNMATCHED, exc.type, exc.code)
