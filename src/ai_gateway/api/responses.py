"""The Responses API over HTTP (docs/api.md, "Responses API"; under /v1 and /ai alike):

    POST   /responses                       create: a Response object, or with `stream` its
                                            events as SSE (`event: <type>` and `data: {...}`)
    GET    /responses/{id}                  a stored response                       (404: none)
    DELETE /responses/{id}                  delete it
    POST   /responses/{id}/cancel           400: only background responses can be cancelled,
                                            and this gateway runs none
    GET    /responses/{id}/input_items      the items the response was made from (its
                                            conversation's earlier turns, then its own input)

Any caller; a stored response is seen only by its owner (and the master key): another caller
gets the same 404 as for an id that does not exist. The same path also takes a WebSocket
upgrade: the WebSocket mode (api/responses_ws.py).

Create runs the chat chain (api/responses_run.py), so limits, budgets, content rules, the cache,
context, routing and fallbacks, usage records and hooks all apply. As on chat completions, an
error before the first event is an HTTP error; one after it ends the stream with an `error`
event and `response.failed`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import partial

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, cancel_on_disconnect, read_json
from ai_gateway.api.render import open_stream, opened_sse_response, route_headers
from ai_gateway.api.responses_run import Events, ResponsesRunner
from ai_gateway.api.route_table import UNMATCHED, matched_route
from ai_gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.responses.records import JSONItem, StoredResponse

MAX_ID_CHARS = 128


class ResponsesAPI:
    def __init__(self, runner: ResponsesRunner, body: BodyLimit, metrics: Metrics) -> None:
        self._runner = runner
        self._keeper = runner.keeper
        self._body = body
        self._metrics = metrics

    async def create(self, request: Request) -> Response:
        body = await read_json(request, self._body)
        info = RequestInfo.from_scope(request.scope)
        runner = self._runner
        prepared = await runner.prepare(body, info, request.headers.get("cache-control"))
        exchange = prepared.exchange
        if not exchange.stream:
            answer = await cancel_on_disconnect(runner.chain(exchange), request.receive)
            assert isinstance(answer, dict)
            response = await runner.answer(prepared, answer)
            return JSONResponse(response, headers={**exchange.headers, **route_headers(info)})
        chunks, first = await cancel_on_disconnect(
            open_stream(runner.chain, exchange), request.receive
        )
        count_error = partial(self._count_error, request)
        events = runner.events(prepared, chunks, first, count_error)
        return opened_sse_response(_sse(events), chunks, exchange, count_error)

    async def retrieve(self, request: Request) -> Response:
        stored = await self._stored(request)
        if request.query_params.get("stream") in ("true", "True", "1"):
            raise InvalidRequestError(
                "Replaying a stored response as a stream is not supported by this gateway; "
                "retrieve it without 'stream'.",
                param="stream",
                code="unsupported_parameter",
            )
        return JSONResponse(stored.response)

    async def delete(self, request: Request) -> Response:
        response_id = _response_id(request)
        info = RequestInfo.from_scope(request.scope)
        if not await self._keeper.delete(response_id, info.principal):
            raise self._not_found(response_id)
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    async def cancel(self, request: Request) -> Response:
        stored = await self._stored(request)
        raise InvalidRequestError(
            f"Response '{stored.id}' is {stored.status}: only a response created with "
            "'background': true can be cancelled, and this gateway runs no background "
            "responses (a streamed one is cancelled by closing its stream).",
            code="response_not_cancellable",
        )

    async def input_items(self, request: Request) -> Response:
        response_id = _response_id(request)
        query = request.query_params
        limit = _int(query.get("limit"), "limit", 20, 1, 100)
        order = query.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidRequestError("'order' is 'asc' or 'desc'.", param="order")
        info = RequestInfo.from_scope(request.scope)
        turns = await self._keeper.chain(response_id, info.principal)
        if not turns:
            raise self._not_found(response_id)
        items: list[JSONItem] = []
        for turn in turns[:-1]:
            items += turn.input_items + turn.output
        items += turns[-1].input_items
        if order == "desc":
            items.reverse()
        page = _page(items, query.get("after"), query.get("before"), limit)
        return JSONResponse(page)

    async def _stored(self, request: Request) -> StoredResponse:
        response_id = _response_id(request)
        info = RequestInfo.from_scope(request.scope)
        stored = await self._keeper.get(response_id, info.principal)
        if stored is None:
            raise self._not_found(response_id)
        return stored

    def _not_found(self, response_id: str) -> NotFoundError:
        why = "" if self._keeper.enabled else " (this gateway keeps no responses: responses.store)"
        return NotFoundError(
            f"Response with id '{response_id[:MAX_ID_CHARS]}' not found{why}.",
            param="response_id",
            code="response_not_found",
        )

    def _count_error(self, request: Request, exc: GatewayError) -> None:
        route = matched_route(request.scope)
        self._metrics.observe_error(route.label if route else UNMATCHED, exc.type, exc.code)


def _response_id(request: Request) -> str:
    return str(request.path_params["response_id"])[: MAX_ID_CHARS + 1]


def _int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequestError(f"'{name}' is a whole number from {low} to {high}.", param=name)
    return int(raw)


def _page(items: list[JSONItem], after: str | None, before: str | None, limit: int) -> JSONObject:
    """A page of `items` (already in the order asked for), after or before an item's id."""
    ids = [item.get("id") for item in items]
    start, end = 0, len(items)
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(items)
    if before is not None:
        end = ids.index(before) if before in ids else 0
    window = items[start:end]
    if before is not None and after is None:
        data = window[-limit:]
        more = len(window) > limit
    else:
        data = window[:limit]
        more = len(window) > limit
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": more,
    }


async def _sse(events: Events) -> AsyncGenerator[bytes, None]:
    """Each event as `event: <type>` and its `data:`, as OpenAI streams them (no [DONE])."""
    try:
        async for event in events:
            yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
    finally:
        await events.aclose()
