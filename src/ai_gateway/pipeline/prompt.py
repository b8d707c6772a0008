"""The prompt template stage (docs/prompts.md): a request with `prompt: {id, version | label,
variables}` becomes the request its template renders, before anything else looks at it: the
caller's allowed models, limits and budget apply to the model and messages that will be sent,
the content rules see the rendered prompt, and the cache keys it (with the template version).

The template's messages come first, then the request's own; the template's model and
parameters apply unless the request sets them. The merged request is checked again, as a
client's would be (request limits, then the schema). The version used is on the exchange
(`x-gateway-prompt: <id>@<version>`), in the usage record and on the request's span.

A request without `prompt` skips the stage (`skips`: the chain does not call it).
"""

from __future__ import annotations

from ai_gateway.errors import InvalidRequestError
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.exchange import Exchange, Kind, Outcome
from ai_gateway.prompts.catalog import PromptCatalog
from ai_gateway.providers.base import ChatRequest
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.config import RequestLimits
from ai_gateway.security.request_limits import check_chat

HEADER = "x-gateway-prompt"
_CARRIED = ("models", "fanout", "cache", "context_strategy", "context", "rag")


class Prompt:
    def __init__(self, catalog: PromptCatalog, limits: RequestLimits) -> None:
        self._catalog = catalog
        self._limits = limits

    def skips(self, exchange: Exchange) -> bool:
        return exchange.kind is not Kind.CHAT or exchange.chat.parsed.prompt is None

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        if self.skips(exchange):
            return await next(exchange)
        await self.apply(exchange)
        return await next(exchange)

    async def apply(self, exchange: Exchange) -> None:
        chat = exchange.chat
        ref = chat.parsed.prompt
        assert ref is not None
        catalog = self._catalog
        compiled = catalog.cached(ref.id, ref.version, ref.label) or await catalog.resolve(
            ref.id, ref.version, ref.label
        )
        rendered = compiled.render(ref.variables)
        body = {**compiled.fields, **chat.body}  # the request's own fields win
        body["messages"] = [*rendered, *chat.body.get("messages", ())]
        # What the schema checks: the merged request, with the request's own messages as they
        # were already checked (pydantic takes the instances as they are) and its gateway
        # fields (chat_exchange took them off its body; its `context` and `rag` win over the
        # template's).
        own: dict[str, object] = {"messages": [*rendered, *chat.parsed.messages]}
        for name in _CARRIED:
            if (value := getattr(chat.parsed, name)) is not None:
                own[name] = value
        try:
            check_chat(body, self._limits)
            parsed = parse_body(ChatCompletionRequest, {**body, **own})
        except InvalidRequestError as exc:
            raise InvalidRequestError(
                f"The request made from {compiled.name}: {exc.message}",
                param=exc.param,
                code=exc.code,
            ) from None
        old = chat.parsed
        parsed.prompt = ref
        body.pop("context", None)  # gateway fields: never sent upstream
        body.pop("rag", None)
        exchange.request = ChatRequest(body=body, parsed=parsed)
        if old.model is None:  # the template named it
            assert parsed.model is not None
            exchange.model = parsed.model
            if not old.models:
                exchange.models = (parsed.model,)
        version = compiled.version
        exchange.prompt = f"{version.prompt_id}@{version.version}"
        exchange.info.prompt_id = version.prompt_id
        exchange.info.prompt_version = version.version
        exchange.headers[HEADER] = exchange.prompt
