"""The context-building stage (docs/integrations.md): for a chat request with a `context` field,
ask the DevMentor services it names (Memory, Project, Learning) in parallel under one time budget,
turn what they answered into blocks within their token budgets (integrations/blocks.py) and put
them in the prompt, after the request's own system text and before the conversation.

Sources fail open: one that is slow, down or answers badly is left out, the answer still comes,
and `x-gateway-context` says which sources were used and why the others were not. With
`context.store`, the finished exchange is given to the Memory service after the answer, off the
client's path.

Whose context: the caller's user (a virtual key's, or the signed-in user's); the master key, and
a gateway without authentication, may name the user with the request's `user` field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ai_gateway.errors import InvalidRequestError
from ai_gateway.integrations.blocks import Count, build_blocks
from ai_gateway.integrations.config import BlockBudgets
from ai_gateway.integrations.contracts import ExchangeMessage, StoreExchangeRequest
from ai_gateway.integrations.sources import ContextQuery, ContextSources, SourceName
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind, Outcome
from ai_gateway.providers.base import ChatRequest
from ai_gateway.schemas.chat import ContextOptions, Message

log = get_logger(__name__)
_LEADING = frozenset({"system", "developer"})
_STORED_ROLES = frozenset({"system", "user", "assistant", "tool"})


class Context:
    def __init__(
        self,
        sources: ContextSources | None,
        budgets: BlockBudgets,
        count: Count,
        window_of: Callable[[str], int | None],
        metrics: Metrics,
    ) -> None:
        self._sources = sources
        self._budgets = budgets
        self._count = count
        self._window_of = window_of
        self._outcomes = metrics.context_sources
        self._storing: set[asyncio.Task[None]] = set()

    def skips(self, exchange: Exchange) -> bool:
        return exchange.kind is not Kind.CHAT or exchange.chat.parsed.context is None

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        if self.skips(exchange):
            return await next(exchange)
        options = exchange.chat.parsed.context
        assert options is not None
        sources = self._sources
        if sources is None:
            raise InvalidRequestError(
                "This gateway builds no context: its DevMentor services are not configured "
                "(integrations.enabled in the config file). Send the request without 'context'.",
                param="context",
                code="context_unavailable",
            )
        asked = self._asked(options)
        if not asked and not options.store:
            return await next(exchange)
        user = self._user(exchange, options)
        conversation = list(exchange.chat.body["messages"])
        if asked:
            query = ContextQuery(
                user_id=user,
                query=last_user_text(exchange.chat.parsed.messages),
                project_id=options.project_id,
            )
            result = await sources.fetch(query, asked)
            for status in result.statuses:
                self._outcomes.labels(status.source, status.reason.value).inc()
            window = self._window_of(exchange.model)
            blocks = build_blocks(result, self._budgets, self._count, window)
            insert_blocks(exchange, [{"role": "system", "content": b.text} for b in blocks])
            exchange.headers["x-gateway-context"] = result.header() or "none"
        outcome = await next(exchange)
        if not options.store:
            return outcome
        if isinstance(outcome, dict):
            self._store(exchange, user, options, conversation, _answer_text(outcome))
            return outcome
        return self._stored_after(exchange, user, options, conversation, outcome)

    @staticmethod
    def _asked(options: ContextOptions) -> tuple[SourceName, ...]:
        asked: list[SourceName] = []
        if options.learning:
            asked.append("learning")
        if options.memory:
            asked.append("memory")
        if options.project_id is not None:
            asked.append("project")
        return tuple(asked)

    @staticmethod
    def _user(exchange: Exchange, options: ContextOptions) -> str:
        principal = exchange.info.principal
        if principal is not None and not principal.admin:
            if principal.user:
                return principal.user
            raise InvalidRequestError(
                "'context' needs a user, and this key has none: create the key with a user "
                "(ai-gateway keys create --user ...), or send the request without 'context'.",
                param="context",
                code="context_needs_user",
            )
        user = exchange.chat.body.get("user")
        if isinstance(user, str) and user.strip(".") and len(user) <= 256:
            return user
        raise InvalidRequestError(
            "'context' needs a user: set the request's 'user' field to the user whose context "
            "to build.",
            param="user",
            code="context_needs_user",
        )

    async def _stored_after(
        self,
        exchange: Exchange,
        user: str,
        options: ContextOptions,
        conversation: list[Any],
        chunks: Chunks,
    ) -> Chunks:
        parts: list[str] = []
        finished = False
        try:
            async for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) == 0:
                        text = (choice.get("delta") or {}).get("content")
                        if isinstance(text, str):
                            parts.append(text)
                yield chunk
            finished = True
        finally:
            await chunks.aclose()
            if finished:  # only a whole answer is remembered
                self._store(exchange, user, options, conversation, "".join(parts))

    def _store(
        self,
        exchange: Exchange,
        user: str,
        options: ContextOptions,
        conversation: list[Any],
        answer: str,
    ) -> None:
        assert self._sources is not None
        messages = [
            ExchangeMessage(role=m["role"], content=_text(m.get("content")))
            for m in conversation
            if isinstance(m, dict) and m.get("role") in _STORED_ROLES
        ]
        if not messages:
            return
        request = StoreExchangeRequest(
            user_id=user,
            request_id=exchange.info.request_id,
            project_id=options.project_id,
            messages=tuple(messages),
            answer=answer,
        )
        task = asyncio.ensure_future(self._store_one(request))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store_one(self, request: StoreExchangeRequest) -> None:
        assert self._sources is not None
        status = await self._sources.store_exchange(request)
        if status is not None:
            self._outcomes.labels("memory_store", status.reason.value).inc()

    async def aclose(self) -> None:
        """Let the exchanges being stored finish (each is bounded by its own timeout), then
        close the services' clients."""
        if self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)
        if self._sources is not None:
            await self._sources.aclose()


def insert_blocks(exchange: Exchange, blocks: list[dict[str, Any]]) -> None:
    """The blocks after the leading system and developer messages (the context blocks already
    there among them), in the body and its typed view alike."""
    if not blocks:
        return
    chat = exchange.chat
    messages = chat.body["messages"]
    at = 0
    while at < len(messages) and isinstance(messages[at], dict):
        if messages[at].get("role") not in _LEADING:
            break
        at += 1
    typed = [Message.model_validate(b) for b in blocks]
    parsed = chat.parsed.messages
    body = {**chat.body, "messages": [*messages[:at], *blocks, *messages[at:]]}
    view = chat.parsed.model_copy(update={"messages": [*parsed[:at], *typed, *parsed[at:]]})
    exchange.request = ChatRequest(body=body, parsed=view)


def last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return _text(message.content)
    return ""


def _text(content: object) -> str:
    """A message's text: its string, or its text parts joined (images and files left out)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) else getattr(part, "text", None)
            if isinstance(text, str):
                texts.append(text)
        return "\n".join(texts)
    return ""


def _answer_text(answer: dict[str, Any]) -> str:
    choices = answer.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    return _text((choices[0].get("message") or {}).get("content"))
