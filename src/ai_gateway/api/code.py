"""POST /ai/code/generate (also /v1/code/generate): the design's code generation flow.

Parse the request (schemas/code.py) -> fetch context (the Project service, through the chain's
context stage, when it names a project) -> select the model (the request's, else the configured
code model name, else the first model name of the config) -> generate the prompt (the
`code-generate` template of the prompt store, by label, codegen/template.py) -> stream the answer
-> format it as files with their syntax checked (codegen/format.py) -> return.

The request runs the chat chain as a chat request with the template as its `prompt`, so limits,
budgets, content rules, the cache, usage records and the prompt version's analytics apply as to
any chat. Answers:

- JSON: `{"id", "object": "code.generation", "created", "model", "files": [{path, language,
  content, check, error?}], "explanation", "finish_reason", "usage"}`;
- `"stream": true`: SSE events `{"type": "delta", "text": ...}` as the answer comes, then one
  `{"type": "result", ...}` with the JSON answer's fields, then `data: [DONE]`; an error after
  the first event is a final `{"error": ...}` event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.api.draining import until_drained
from ai_gateway.api.render import open_stream, route_headers, sse_response
from ai_gateway.api.route_table import UNMATCHED, matched_route
from ai_gateway.codegen.format import format_answer
from ai_gateway.codegen.template import TEMPLATE_ID
from ai_gateway.errors import GatewayError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.pipeline.exchange import Chunks, Exchange, chat_exchange
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.code import CodeGenerateRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.config import RequestLimits
from ai_gateway.streaming.sse import DONE, encode_data


class CodeAPI:
    def __init__(
        self,
        chains: Chains,
        limits: RequestLimits,
        body: BodyLimit,
        metrics: Metrics,
        model_of: Callable[[str | None], str],
        template_label: str,
        ensure_template: Callable[[], Awaitable[None]],
    ) -> None:
        self._chains = chains
        self._limits = limits
        self._body = body
        self._metrics = metrics
        self._model_of = model_of
        self._label = template_label
        self._ensure_template = ensure_template

    async def generate(self, request: Request) -> Response:
        body = await read_json(request, self._body)
        exchange, formatter = await self.exchange(body, RequestInfo.from_scope(request.scope))
        if not exchange.stream:
            answer = await until_drained(self._chains.chat(exchange), request, exchange)
            assert isinstance(answer, dict)
            return JSONResponse(
                formatted_answer(answer, formatter),
                headers={**exchange.headers, **route_headers(exchange.info)},
            )
        count_error = partial(self._count_error, request)
        chain = self._chains.chat
        events = _sse(lambda: open_stream(chain, exchange), formatter, count_error)
        return sse_response(events, exchange, count_error)

    async def exchange(self, body: Any, info: RequestInfo) -> tuple[Exchange, Formatter]:
        """A code request's chat exchange (run by the chat chain), and how its answer is
        formatted as files. Shared with the WebSocket (api/ws.py)."""
        parsed = parse_body(CodeGenerateRequest, body)
        await self._ensure_template()
        exchange = chat_exchange(self._chat_body(parsed), info, self._limits)
        return exchange, partial(_formatted, parsed)

    def _chat_body(self, parsed: CodeGenerateRequest) -> JSONObject:
        body: JSONObject = {
            "model": self._model_of(parsed.model),
            "messages": [],  # the template's
            "prompt": {"id": TEMPLATE_ID, "label": self._label, "variables": parsed.variables()},
            "stream": parsed.stream,
        }
        if parsed.stream:
            body["stream_options"] = {"include_usage": True}
        if parsed.project_id is not None:
            body["context"] = {"project_id": parsed.project_id}
        if parsed.vector_store_ids is not None:
            body["rag"] = {
                "vector_store_ids": parsed.vector_store_ids,
                "query": parsed.instructions,
            }
        for name in ("user", "max_tokens", "temperature"):
            value = getattr(parsed, name)
            if value is not None:
                body[name] = value
        return body

    def _count_error(self, request: Request, exc: GatewayError) -> None:
        route = matched_route(request.scope)
        self._metrics.observe_error(route.label if route else UNMATCHED, exc.type, exc.code)


def _formatted(
    parsed: CodeGenerateRequest, answer: JSONObject, text: str, finish: Any, usage: Any
) -> JSONObject:
    named = tuple(f.path for f in parsed.files)
    if parsed.selection is not None:
        named = (parsed.selection.path,)
    around = (parsed.prefix or "", parsed.suffix or "") if parsed.fim else None
    formatted = format_answer(text, parsed.language, named, around)
    return {
        "id": "codegen-" + str(answer.get("id") or ""),
        "object": "code.generation",
        "created": answer.get("created") or int(time.time()),
        "model": answer.get("model"),
        **formatted.to_json(),
        "finish_reason": finish,
        "usage": usage,
    }


def _text_of(answer: JSONObject) -> tuple[str, Any]:
    choices = answer.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    content = (choice.get("message") or {}).get("content")
    return (content if isinstance(content, str) else ""), choice.get("finish_reason")


Formatter = Callable[[JSONObject, str, Any, Any], JSONObject]


def formatted_answer(answer: JSONObject, formatter: Formatter) -> JSONObject:
    """The JSON answer of a code request, from the chat chain's answer."""
    text, finish = _text_of(answer)
    return formatter(answer, text, finish, answer.get("usage"))


async def code_events(
    chunks: Chunks, first: JSONObject | None, formatter: Formatter
) -> AsyncGenerator[JSONObject, None]:
    """A streamed code request's events: `{"type": "delta", "text"}` as the answer comes, then
    `{"type": "result", ...}`. Closes `chunks` however it ends; a GatewayError passes through."""
    parts: list[str] = []
    finish: Any = None
    usage: Any = None
    head: JSONObject = {}
    try:
        chunk = first
        while chunk is not None:
            head = head or chunk
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                finish = choice.get("finish_reason") or finish
                text = (choice.get("delta") or {}).get("content")
                if isinstance(text, str) and text:
                    parts.append(text)
                    yield {"type": "delta", "text": text}
            chunk = await anext(chunks, None)
    finally:
        await chunks.aclose()
    result = formatter(head, "".join(parts), finish, usage)
    yield {"type": "result", **result}


async def _sse(
    opening: Callable[[], Awaitable[tuple[Chunks, JSONObject | None]]],
    formatter: Formatter,
    count_error: Callable[[GatewayError], None],
) -> AsyncGenerator[bytes, None]:
    """The events of a streamed code request, opened (run up to the first chunk) when the
    response starts; a GatewayError until then passes through (`api/render.py`)."""
    chunks, first = await opening()
    events = code_events(chunks, first, formatter)
    try:
        async for event in events:
            yield encode_data(event)
    except GatewayError as exc:
        count_error(exc)
        yield encode_data(exc.to_dict())
        return
    finally:
        await events.aclose()
    yield DONE
