"""One Responses request, from its JSON to its Response object or events, shared by HTTP
(`api/responses.py`) and the WebSocket mode (`api/responses_ws.py`).

    prepare   the body checked (schema), the earlier turns found (`previous_response_id`: the
              socket's own recent responses first, then the store), the request translated
              (responses/request.py) into a chat exchange, as `POST /v1/chat/completions`
              makes one (request limits, schema), so that every stage of the chat chain applies
    answer    the chain's JSON answer as a Response object (responses/output.py), kept
    events    the chain's chunks as Responses events (responses/events.py); the response is
              kept before `response.completed` goes out, so that a client may continue from it
              at once; a failure after the stream started ends it with `error` and
              `response.failed`

A response is kept when the request says `store` (the default) and the gateway keeps responses.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.errors import GatewayError, InvalidRequestError
from ai_gateway.pipeline.chain import Chain
from ai_gateway.pipeline.exchange import Chunks, Exchange, chat_exchange
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.responses import ids
from ai_gateway.responses import output as out
from ai_gateway.responses.events import ResponseStream
from ai_gateway.responses.keeper import Keeper
from ai_gateway.responses.records import JSONItem, StoredResponse, Turn
from ai_gateway.responses.request import FILE_SEARCH_RESULTS, LOGPROBS, ResponsesCall, translate
from ai_gateway.schemas.responses import ResponsesRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.config import RequestLimits

Events = AsyncGenerator[JSONObject, None]
ErrorCount = Callable[[GatewayError], None]


@dataclass
class Prepared:
    """A request ready to run: its call, its exchange, and its response's id and time."""

    call: ResponsesCall
    exchange: Exchange
    turns: list[Turn]  # the earlier responses it continues, oldest first
    id: str = field(default_factory=lambda: ids.new_id(ids.RESPONSE))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def turn(self, output: list[JSONItem]) -> Turn:
        return Turn(self.id, self.call.input_items, output)


def failure(exc: GatewayError) -> JSONObject:
    """A Response object's `error` for a gateway error (its codes are OpenAI's few: a rate
    limit, or a server error; the gateway's own type and message say more)."""
    code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
    return {"code": code, "message": exc.message, "type": exc.type, "param": exc.param}


class ResponsesRunner:
    def __init__(self, chain: Chain, limits: RequestLimits, keeper: Keeper) -> None:
        self._chain = chain
        self._limits = limits
        self.keeper = keeper

    @property
    def chain(self) -> Chain:
        return self._chain

    async def prepare(
        self,
        body: Any,
        info: RequestInfo,
        cache_control: str | None = None,
        recent: Mapping[str, list[Turn]] | None = None,
    ) -> Prepared:
        parsed = parse_body(ResponsesRequest, body)
        turns = await self._turns(parsed.previous_response_id, info, recent)
        store = parsed.store is not False and self.keeper.enabled
        call = translate(body, parsed, turns, store)
        exchange = chat_exchange(call.chat, info, self._limits, cache_control)
        return Prepared(call, exchange, turns)

    async def _turns(
        self, previous: str | None, info: RequestInfo, recent: Mapping[str, list[Turn]] | None
    ) -> list[Turn]:
        if previous is None:
            return []
        if recent is not None and previous in recent:
            return recent[previous]
        if not self.keeper.enabled:
            raise InvalidRequestError(
                "This gateway keeps no responses (responses.store is off): send the whole "
                "conversation in 'input' instead of 'previous_response_id'.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        turns = await self.keeper.chain(previous, info.principal)
        if not turns:
            raise InvalidRequestError(
                f"Previous response with id '{previous[:128]}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return turns

    def _skeleton(self, prepared: Prepared) -> JSONObject:
        return out.response_object(
            prepared.id,
            prepared.created_at,
            prepared.exchange.model,
            prepared.call.echo,
            status="in_progress",
            output=[],
        )

    def _searched(self, prepared: Prepared) -> list[JSONItem]:
        """The file_search_call item, when the request had a file_search tool and the
        retrieval stage ran."""
        retrieval = prepared.exchange.retrieval
        if not prepared.call.file_search or retrieval is None:
            return []
        with_results = FILE_SEARCH_RESULTS in prepared.call.include
        return [out.file_search_item(retrieval.query, retrieval.hits, with_results)]

    async def answer(self, prepared: Prepared, answer: JSONObject) -> JSONObject:
        items, finish = out.output_items(answer, LOGPROBS in prepared.call.include)
        response = out.response_object(
            prepared.id,
            prepared.created_at,
            prepared.exchange.model,
            prepared.call.echo,
            status="completed",
            output=self._searched(prepared) + items,
            usage=out.usage(answer.get("usage")),
            finish_reason=finish,
            completed_at=int(time.time()),
        )
        await self.keep(prepared, response)
        return response

    async def events(
        self, prepared: Prepared, chunks: Chunks, first: JSONObject | None, count: ErrorCount
    ) -> Events:
        """The response's events; closes `chunks` however it ends. `count` is told of an
        error that ends the stream after it started."""
        stream = ResponseStream(self._skeleton(prepared), LOGPROBS in prepared.call.include)
        try:
            for event in stream.opening(self._searched(prepared)):
                yield event
            chunk = first
            while chunk is not None:
                for event in stream.feed(chunk):
                    yield event
                chunk = await anext(chunks, None)
        except GatewayError as exc:
            count(exc)
            failed = stream.fail(failure(exc))
            await self.keep(prepared, stream.response)
            for event in failed:
                yield event
            return
        finally:
            await chunks.aclose()
        final = stream.finish(int(time.time()))
        await self.keep(prepared, stream.response)
        for event in final:
            yield event

    async def keep(self, prepared: Prepared, response: JSONObject) -> None:
        if not prepared.call.store:
            return
        info = prepared.exchange.info
        await self.keeper.keep(
            StoredResponse(
                id=prepared.id,
                created_at=prepared.created_at,
                owner=self.keeper.owner(info.principal),
                previous_response_id=prepared.call.echo.get("previous_response_id"),
                status=str(response.get("status")),
                response=response,
                input_items=prepared.call.input_items,
            )
        )
