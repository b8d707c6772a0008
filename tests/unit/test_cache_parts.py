"""The response cache's parts alone: keys and scopes, the in-process store's bounds, entries and
their conversions between a JSON answer and a stream, the Cache-Control header, flights."""

from __future__ import annotations

import asyncio
import tracemalloc
from decimal import Decimal
from typing import Any

import orjson
import pytest

from ai_gateway.cache.controls import CacheControl
from ai_gateway.cache.entry import BadEntryError, Entry, answer_of, chunks_of, encode_entry
from ai_gateway.cache.flight import FlightAbandoned, Flights
from ai_gateway.cache.key import cache_key, params_hash, scope_of
from ai_gateway.cache.store import MemoryStore
from ai_gateway.errors import UpstreamError
from ai_gateway.security.principal import Principal

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def digest(body: dict[str, Any], tenant: str = "t", namespace: str = "default") -> str:
    return cache_key(body, tenant, namespace).digest


def test_fields_that_cannot_change_the_answer_are_not_in_the_key() -> None:
    same = {**BODY, "user": "u", "metadata": {"a": 1}, "stream": True, "stream_options": {}}
    assert digest(same) == digest(BODY)
    assert digest({"messages": BODY["messages"], "model": "m"}) == digest(BODY)  # key order


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"temperature": 0.5},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tool_choice": "none"},
        {"response_format": {"type": "json_object"}},
        {"seed": 1},
        {"max_tokens": 5},
        {"stop": ["x"]},
        {"n": 2},
        {"logprobs": True},
        {"reasoning_effort": "high"},
        {"some_new_field": 1},  # unknown: it might change the answer
    ],
)
def test_what_can_change_the_answer_is_in_the_key(change: dict[str, Any]) -> None:
    assert digest({**BODY, **change}) != digest(BODY)


def test_tenants_and_namespaces_never_share_a_key() -> None:
    assert digest(BODY, tenant="team:a") != digest(BODY, tenant="team:b")
    assert digest(BODY, namespace="x") != digest(BODY, namespace="y")


def test_scopes() -> None:
    teamed = Principal(kind="jwt", user="u", team="blue")
    loner = Principal(kind="jwt", user="v")
    assert scope_of(None, "team") == "anonymous"
    assert scope_of(Principal(kind="master"), "global") == "master"
    assert scope_of(teamed, "team") == "team:blue"
    assert scope_of(loner, "team") == "user:v"  # no team: the user alone
    assert scope_of(teamed, "user") == "user:u"
    assert scope_of(teamed, "global") == "global"
    assert scope_of(teamed, "key") == "user:u"  # a JWT has no key: its user


def test_the_semantic_params_hash_ignores_only_the_query() -> None:
    history = {**BODY, "messages": [{"role": "system", "content": "s"}, *BODY["messages"]]}
    paraphrase = {
        **history,
        "messages": [*history["messages"][:-1], {"role": "user", "content": "hey"}],
    }
    assert params_hash(history) == params_hash(paraphrase)
    assert params_hash(history) != params_hash({**history, "temperature": 1})
    assert params_hash(history) != params_hash(BODY)  # another system prompt


def test_the_memory_store_is_bounded_by_bytes_and_expires() -> None:
    async def run() -> None:
        store = MemoryStore(max_bytes=100)
        await store.set("ns", "a", b"x" * 40, 60)
        await store.set("ns", "b", b"x" * 40, 60)
        assert await store.get("ns", "a") is not None  # a is now the most recent
        await store.set("ns", "c", b"x" * 40, 60)  # over 100: the least recent (b) goes
        assert await store.get("ns", "b") is None
        assert store.size_bytes == 80
        await store.set("ns", "big", b"x" * 101, 60)  # bigger than the store: not kept
        assert await store.get("ns", "big") is None
        await store.set("other", "d", b"y", 0.01)
        await asyncio.sleep(0.02)
        assert await store.get("other", "d") is None
        assert await store.delete("ns") == 2
        assert store.size_bytes == 0

    asyncio.run(run())


ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "x" * 150,
                "reasoning_content": "because",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def test_a_json_answer_replays_as_chunks_that_add_up_to_it() -> None:
    chunks = chunks_of(ANSWER)
    assert len(chunks) > 4
    assert chunks[-1]["usage"] == ANSWER["usage"]
    assert chunks[-1]["choices"] == []
    rebuilt = answer_of(chunks)
    assert rebuilt["choices"][0]["message"] == ANSWER["choices"][0]["message"]
    assert rebuilt["choices"][0]["finish_reason"] == "tool_calls"
    assert rebuilt["usage"] == ANSWER["usage"]


def test_streamed_tool_call_fragments_are_put_together() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    chunks = [
        chunk({"role": "assistant"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    message = answer_of(chunks)["choices"][0]["message"]
    assert message["tool_calls"] == [
        {"id": "call_9", "type": "function", "function": {"name": "get", "arguments": '{"q": "x"}'}}
    ]
    assert message["content"] is None


def test_entries_round_trip_and_bad_bytes_are_refused() -> None:
    entry = Entry(5.0, ANSWER, None, Decimal("0.25"), 7)
    back = Entry.decode(entry.encode())
    assert back == entry
    assert back.as_answer() == ANSWER
    again = Entry.decode(entry.encode())
    assert again.as_answer() is not back.as_answer()  # each request decodes its own to change
    for bad in (b"not json", b"{}", orjson.dumps({"v": 99}), orjson.dumps({"v": 1, "created": 1})):
        with pytest.raises(BadEntryError):
            Entry.decode(bad)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("no-cache", CacheControl(no_cache=True)),
        ("No-Store, max-age=30", CacheControl(no_store=True, max_age_s=30)),
        ("max-age=0", CacheControl(no_cache=True)),
        ("max-age=abc, private", CacheControl()),
    ],
)
def test_cache_control(header: str | None, expected: CacheControl) -> None:
    assert CacheControl.parse(header) == expected


def test_a_flight_s_followers_get_every_chunk_and_the_leader_s_end() -> None:
    async def run() -> None:
        flights = Flights()
        flight, leading = flights.join("k")
        assert leading
        again, follows = flights.join("k")
        assert again is flight
        assert not follows
        flight.chunk(orjson.dumps({"n": 1}))

        async def follower() -> list[int]:
            return [chunk["n"] async for chunk in flight.follow()]

        task = asyncio.create_task(follower())
        await asyncio.sleep(0)
        flight.chunk(orjson.dumps({"n": 2}))
        flight.finished(Decimal(1), 3)
        assert await task == [1, 2]
        flights.land("k", flight)
        assert flights.join("k")[1]  # landed: the next request leads a new flight

    asyncio.run(run())


def test_a_flight_s_followers_get_its_failure() -> None:
    async def run() -> None:
        flight, _ = Flights().join("k")
        flight.failed(UpstreamError("down"))
        with pytest.raises(UpstreamError):
            async for _ in flight.follow():
                pass
        abandoned, _ = Flights().join("k")
        abandoned.abandoned()
        with pytest.raises(FlightAbandoned):
            async for _ in abandoned.follow():
                pass

    asyncio.run(run())


def test_an_entry_takes_about_its_own_size_in_memory() -> None:
    """The in-process store is bounded by the entries' lengths: an entry must not hold a bigger
    allocation (orjson's output holds at least 4 KiB)."""
    answer = orjson.dumps(ANSWER)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [encode_entry(1.0, answer, None, None, 7) for _ in range(200)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert held / len(kept) < 2 * len(kept[0])
