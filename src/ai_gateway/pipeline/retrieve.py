"""The retrieval stage (docs/rag.md): for a chat request with `rag`, or with a `file_search`
tool in `tools` (for any provider: the gateway runs the search itself and sends the tool to no
one), search the named vector stores for the last user message and put the best passages in the
prompt as one system block, after the context builder's blocks and before the conversation.

Each store must be one the caller may see (else 404, as on the vector-store API: a store id a
request or a model names never reaches beyond the caller's own). The passages fill at most
`rag.context_tokens` tokens and, with the blocks before them, at most the context builder's share
of the model's window; a passage that does not fit whole is left out. The answer says where its
passages came from: `x-gateway-citations` (file id, filename, score of each passage used) and,
with `rag.citations`, a `citations` list in the body (a stream: in its first chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ai_gateway.errors import InvalidRequestError
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.context import insert_blocks, last_user_text
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind, Outcome, Retrieval
from ai_gateway.providers.base import ChatRequest
from ai_gateway.rag.access import viewer_of
from ai_gateway.rag.config import RagConfig
from ai_gateway.rag.filters import AttributeFilter, CompoundFilter
from ai_gateway.rag.index import IndexHit
from ai_gateway.rag.search import Searcher
from ai_gateway.schemas.chat import RagOptions, Tool
from ai_gateway.schemas.validation import parse_body

Count = Callable[[str], int]
HEADING = (
    "Passages from the user's files (the gateway's vector stores), most relevant first. Use "
    "them when they answer the question, and name the file a fact came from."
)


class Retrieve:
    def __init__(
        self,
        searcher: Searcher | None,
        config: RagConfig,
        count: Count,
        window_of: Callable[[str], int | None],
        window_share: float,
    ) -> None:
        self._searcher = searcher
        self._config = config
        self._count = count
        self._window_of = window_of
        self._window_share = window_share

    def skips(self, exchange: Exchange) -> bool:
        if exchange.kind is not Kind.CHAT:
            return True
        parsed = exchange.chat.parsed
        return parsed.rag is None and not any(t.type == "file_search" for t in parsed.tools or ())

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        if self.skips(exchange):
            return await next(exchange)
        parsed = exchange.chat.parsed
        searching = [t for t in parsed.tools or () if t.type == "file_search"]
        if self._searcher is None:
            raise InvalidRequestError(
                "This gateway has no vector stores (rag.enabled is off in its config file): "
                "send the request without 'rag' or a file_search tool.",
                param="rag" if parsed.rag is not None else "tools",
                code="rag_unavailable",
            )
        options = parsed.rag or _from_tool(searching[0])
        if searching:
            _without_file_search(exchange)
        query = options.query or last_user_text(exchange.chat.parsed.messages)
        hits: list[IndexHit] = []
        if query.strip():
            hits = await self._searcher.retrieve(
                options.vector_store_ids,
                query,
                options.max_num_results or self._config.max_num_results,
                options.score_threshold,
                viewer_of(exchange.info.principal),
                _filters(options.filters),
            )
        used = self._fit(exchange, hits)
        exchange.retrieval = Retrieval(query, tuple(used))
        if used:
            insert_blocks(exchange, [{"role": "system", "content": _block(used)}])
        exchange.headers["x-gateway-citations"] = _header(used) or "none"
        outcome = await next(exchange)
        if not options.citations:
            return outcome
        citations = [_citation(hit) for hit in used]
        if isinstance(outcome, dict):
            return {**outcome, "citations": citations}
        return _cited(outcome, citations)

    def _fit(self, exchange: Exchange, hits: list[IndexHit]) -> list[IndexHit]:
        """The passages that fit the budget, best first."""
        budget = self._config.context_tokens
        window = self._window_of(exchange.model)
        if window is not None:
            taken = sum(
                self._count(m.get("content") or "")
                for m in exchange.chat.body["messages"]
                if isinstance(m, dict)
                and m.get("role") == "system"
                and isinstance(m.get("content"), str)
            )
            budget = min(budget, int(window * self._window_share) - taken)
        used: list[IndexHit] = []
        spent = self._count(HEADING)
        for hit in hits:
            cost = self._count(_passage(len(used) + 1, hit))
            if spent + cost <= budget:
                used.append(hit)
                spent += cost
        return used


def _from_tool(tool: Tool) -> RagOptions:
    """A file_search tool as the Responses API shapes it (`vector_store_ids`,
    `max_num_results`, `filters`, `ranking_options.score_threshold`), also nested under
    `file_search` as some clients send it."""
    raw: dict[str, Any] = dict(tool.model_extra or {})
    nested = raw.pop("file_search", None)
    if isinstance(nested, dict):
        raw = {**nested, **raw}
    ranking = raw.get("ranking_options")
    body = {
        "vector_store_ids": raw.get("vector_store_ids"),
        "max_num_results": raw.get("max_num_results"),
        "filters": raw.get("filters"),
        "score_threshold": ranking.get("score_threshold") if isinstance(ranking, dict) else None,
    }
    try:
        return parse_body(RagOptions, {k: v for k, v in body.items() if v is not None})
    except InvalidRequestError as exc:
        raise InvalidRequestError(
            f"The file_search tool: {exc.message}", param="tools", code=exc.code
        ) from None


def _without_file_search(exchange: Exchange) -> None:
    """The request without its file_search tools (the gateway ran the search), in the body and
    its typed view alike; without tools left, without tools and tool_choice."""
    chat = exchange.chat
    tools = [t for t in chat.body.get("tools") or () if t.get("type") != "file_search"]
    typed = [t for t in chat.parsed.tools or () if t.type != "file_search"]
    body = {**chat.body, "tools": tools}
    update: dict[str, Any] = {"tools": typed}
    if not tools:
        body.pop("tools")
        body.pop("tool_choice", None)
        update = {"tools": None, "tool_choice": None}
    exchange.request = ChatRequest(body=body, parsed=chat.parsed.model_copy(update=update))


def _filters(raw: dict[str, Any] | None) -> AttributeFilter | None:
    if raw is None:
        return None
    wrapped = parse_body(CompoundFilter, {"type": "and", "filters": [raw]})
    return wrapped.filters[0]


def _passage(n: int, hit: IndexHit) -> str:
    return f"[{n}] {hit.filename} (score {hit.score:.2f}):\n{hit.text.strip()}"


def _block(hits: list[IndexHit]) -> str:
    return "\n\n".join([HEADING, *(_passage(n, hit) for n, hit in enumerate(hits, 1))])


def _header(hits: list[IndexHit]) -> str:
    return ", ".join(
        f'{hit.file_id};filename="{quote(hit.filename)}";score={hit.score:.4f}' for hit in hits
    )


def _citation(hit: IndexHit) -> dict[str, Any]:
    return {
        "type": "file_citation",
        "file_id": hit.file_id,
        "filename": hit.filename,
        "vector_store_id": hit.store_id,
        "score": hit.score,
    }


async def _cited(chunks: Chunks, citations: list[dict[str, Any]]) -> Chunks:
    first = True
    try:
        async for chunk in chunks:
            if first:
                chunk = {**chunk, "citations": citations}
                first = False
            yield chunk
    finally:
        await chunks.aclose()
