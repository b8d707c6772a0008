"""POST /ai/chat/completions and /v1/chat/completions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ai_gateway.api.common import JSONResponse, cancel_on_disconnect, read_json
from ai_gateway.pipeline.chat import ChatPipeline
from ai_gateway.pipeline.context import RequestInfo
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.schemas.validation import parse_body

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class CompletionsAPI:
    def __init__(self, pipeline: ChatPipeline, max_body_bytes: int) -> None:
        self._pipeline = pipeline
        self._limit = max_body_bytes

    async def chat(self, request: Request) -> Response:
        body = await read_json(request, self._limit)
        parsed = parse_body(ChatCompletionRequest, body)
        chat = ChatRequest(body=body, parsed=parsed)
        info = RequestInfo.from_scope(request.scope)
        if parsed.stream:
            stream = await cancel_on_disconnect(
                self._pipeline.open_stream(chat, info), request.receive
            )
            return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
        result = await cancel_on_disconnect(self._pipeline.complete(chat, info), request.receive)
        return JSONResponse(result)

    async def embeddings(self, request: Request) -> Response:
        body = await read_json(request, self._limit)
        parsed = parse_body(EmbeddingsRequest, body)
        info = RequestInfo.from_scope(request.scope)
        result = await cancel_on_disconnect(
            self._pipeline.embeddings(EmbeddingsCall(body=body, parsed=parsed), info),
            request.receive,
        )
        return JSONResponse(result)
