"""The order of the stages, from the one list that declares it (pipeline/chains.py): each kind of
model request (chat, streamed chat, embeddings, a fan-out) runs it; a stage's after-work runs in
reverse order, for a stream when the stream ends; a fan-out runs the stages after it once per
model, each branch recorded; and one name added to the list takes effect for all of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import pytest

from ai_gateway.pipeline import chains
from ai_gateway.pipeline.chain import Chain, Next, Stage
from ai_gateway.pipeline.chains import MODEL_STAGES, Chains, Stages
from ai_gateway.pipeline.exchange import (
    Chunks,
    Exchange,
    Outcome,
    chat_exchange,
    embeddings_exchange,
)
from ai_gateway.pipeline.fanout import Fanout
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits

Events = list[str]
# What the fake stages note for one request (a fan-out's branches add theirs)
ORDER = [
    *("record>", "prompt>", "admit>", "guard>", "hooks>", "cache>", "context>", "retrieve>"),
    "call",
    *("retrieve<", "context<", "cache<", "hooks<", "guard<", "admit<", "prompt<", "record<"),
]


class Around:
    """A stage that notes `<name>>` before `next` and `<name><` after it (for a stream: when
    the stream ends), with the exchange's model when it runs for a fan-out's branch."""

    def __init__(self, name: str, events: Events) -> None:
        self.name = name
        self.events = events

    def _note(self, exchange: Exchange, mark: str) -> None:
        branch = exchange.info.request_id.partition(".")[2]
        self.events.append(f"{self.name}{mark}" + (f"[{exchange.model}]" if branch else ""))

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        self._note(exchange, ">")
        outcome = await next(exchange)
        if isinstance(outcome, dict):
            self._note(exchange, "<")
            return outcome
        return self._after(exchange, outcome)

    async def _after(self, exchange: Exchange, chunks: Chunks) -> Chunks:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()
            self._note(exchange, "<")


class Answer:
    """The last stage: a JSON answer, or a stream of two chunks."""

    def __init__(self, events: Events) -> None:
        self.events = events

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        self.events.append(
            "call" + (f"[{exchange.model}]" if "." in exchange.info.request_id else "")
        )
        if exchange.stream:
            return self._chunks(exchange.model)
        return {"object": "answer", "model": exchange.model}

    async def _chunks(self, model: str) -> AsyncGenerator[dict[str, Any], None]:
        for n in range(2):
            yield {"model": model, "choices": [{"index": 0, "delta": {"content": f"{n}"}}]}


def fake_stages(events: Events) -> Stages:
    record = Around("record", events)
    return Stages(
        record=record,
        prompt=Around("prompt", events),
        admit=Around("admit", events),
        fanout=Fanout(record),
        guard=Around("guard", events),
        hooks=Around("hooks", events),
        cache=Around("cache", events),
        context=Around("context", events),
        retrieve=Around("retrieve", events),
        call=Answer(events),
    )


def chat(**extra: Any) -> Exchange:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    return chat_exchange(body, RequestInfo(request_id="r"), RequestLimits())


def embeddings() -> Exchange:
    return embeddings_exchange(
        {"model": "e", "input": "hi"}, RequestInfo(request_id="r"), RequestLimits()
    )


async def run(chain: Chain, exchange: Exchange) -> Outcome:
    outcome = await chain(exchange)
    if isinstance(outcome, dict):
        return outcome
    return {"chunks": [chunk async for chunk in outcome]}


def test_the_model_endpoints_run_the_declared_list() -> None:
    declared = (
        "record",
        "prompt",
        "admit",
        "fanout",
        "guard",
        "hooks",
        "cache",
        "context",
        "retrieve",
        "call",
    )
    assert declared == MODEL_STAGES
    built = Chains.build(fake_stages([]))
    names = [type(s).__name__ for s in built.chat.stages]
    assert names == [
        "Around",
        "Around",
        "Around",
        "Fanout",
        "Around",
        "Around",
        "Around",
        "Around",
        "Around",
        "Answer",
    ]
    assert built.embeddings.stages == built.chat.stages


def test_a_chat_request_goes_down_the_stages_and_back_up_once() -> None:
    events: Events = []
    answer = asyncio.run(run(Chains.build(fake_stages(events)).chat, chat()))
    assert answer == {"object": "answer", "model": "m"}
    assert events == ORDER


def test_a_stream_s_after_work_runs_when_it_ends_innermost_first() -> None:
    events: Events = []
    chain = Chains.build(fake_stages(events)).chat

    async def opened_then_read() -> list[str]:
        outcome = await chain(chat(stream=True))
        assert not isinstance(outcome, dict)
        before = list(events)
        assert [c["choices"][0]["delta"]["content"] async for c in outcome] == ["0", "1"]
        return before

    before = asyncio.run(opened_then_read())
    assert before == ORDER[:9]
    assert events == ORDER


def test_a_stream_closed_after_its_first_chunk_runs_every_stage_s_clean_up() -> None:
    events: Events = []
    chain = Chains.build(fake_stages(events)).chat

    async def first_chunk_then_close() -> None:
        outcome = await chain(chat(stream=True))
        assert not isinstance(outcome, dict)
        await anext(outcome)  # as the renderer does: every wrapper is now running
        await outcome.aclose()

    asyncio.run(first_chunk_then_close())
    assert events[-8:] == ORDER[-8:]


def test_embeddings_run_the_same_stages() -> None:
    events: Events = []
    asyncio.run(run(Chains.build(fake_stages(events)).embeddings, embeddings()))
    assert events == ORDER


@pytest.mark.parametrize("stream", [False, True])
def test_a_fanout_runs_the_stages_after_it_once_per_model_each_branch_recorded(
    stream: bool,
) -> None:
    events: Events = []
    chain = Chains.build(fake_stages(events)).chat
    mode = "first" if stream else "all"
    asyncio.run(run(chain, chat(models=["a", "b"], fanout=mode, stream=stream)))
    assert events[:3] == ["record>", "prompt>", "admit>"]
    assert events[-3:] == ["admit<", "prompt<", "record<"]
    for model in ("a", "b"):
        branch = [e for e in events if e.endswith(f"[{model}]")]
        down = ("record>", "guard>", "hooks>", "cache>", "context>", "retrieve>", "call")
        assert branch[:7] == [f"{name}[{model}]" for name in down]
        if not stream or model == "a":  # a losing stream may be closed at any point
            up = ("retrieve<", "context<", "cache<", "hooks<", "guard<", "record<")
            assert branch[7:] == [f"{name}[{model}]" for name in up]


def test_one_name_added_to_the_list_takes_effect_for_every_kind_of_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a new stage (a hook) is added: one line in pipeline/chains.py."""
    events: Events = []

    @dataclass(frozen=True)
    class WithHook(Stages):
        hook: Stage

    stages = WithHook(**vars(fake_stages(events)), hook=Around("hook", events))
    monkeypatch.setattr(chains, "MODEL_STAGES", (*MODEL_STAGES[:-1], "hook", MODEL_STAGES[-1]))
    built = Chains.build(stages)
    requests = {
        "chat": (built.chat, chat()),
        "stream": (built.chat, chat(stream=True)),
        "embeddings": (built.embeddings, embeddings()),
        "fanout": (built.chat, chat(models=["a", "b"])),
    }
    for kind, (chain, exchange) in requests.items():
        events.clear()
        asyncio.run(run(chain, exchange))
        calls = [n for n, e in enumerate(events) if e.startswith("call")]
        assert calls, kind
        for n in calls:  # right around every provider call, for each branch of a fan-out
            assert events[n - 1].startswith("hook>"), (kind, events)
            assert events[n + 1].startswith("hook<"), (kind, events)


class Idle(Around):
    """A stage that says, before it runs, whether it has anything to do: only for `stream`
    requests here. Its own call refuses to run for any other request."""

    def skips(self, exchange: Exchange) -> bool:
        return not exchange.stream

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        assert exchange.stream, "called for an exchange it skips"
        return await super().__call__(exchange, next)


@pytest.mark.parametrize("stream", [False, True])
def test_a_stage_that_skips_an_exchange_is_not_called_for_it(stream: bool) -> None:
    events: Events = []
    stages = Stages(**{**vars(fake_stages(events)), "cache": Idle("cache", events)})
    answer = asyncio.run(run(Chains.build(stages).chat, chat(stream=stream)))
    assert answer
    expected = ORDER if stream else [e for e in ORDER if not e.startswith("cache")]
    assert events == expected


def test_a_link_adds_no_coroutine_of_its_own() -> None:
    """The chain hands back the first stage's coroutine: no wrapper frame per stage."""
    events: Events = []
    stage = Around("only", events)
    chain = Chain([stage, Answer(events)])
    pending = chain(chat())
    assert getattr(pending, "cr_code", None) is Around.__call__.__code__
    asyncio.run(pending)  # type: ignore[arg-type]
    assert events == ["only>", "call", "only<"]
