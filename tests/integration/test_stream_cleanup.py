"""A stream the gateway opened upstream is recorded, charged and closed however it ends, also
when nobody ever reads it (a client gone before the body started, a losing fan-out branch);
and a stream read to its end closes every async generator it made itself, on every provider,
leaving none to the garbage collector."""

from __future__ import annotations

import gc
import sys
from typing import Any

import httpx

from ai_gateway.pipeline.exchange import chat_exchange
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits
from conftest import GatewayFactory, emulator_yaml
from harness import EMULATOR_KEY, EmulatorServer


def test_a_stream_closed_before_it_is_read_is_recorded(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu))
    body = {
        "model": "fast",
        "stream": True,
        "messages": [{"role": "user", "content": "opened but never read"}],
    }
    info = RequestInfo(request_id="never-read")
    exchange = chat_exchange(body, info, RequestLimits())

    async def open_and_drop() -> None:
        stream = await gw.gateway.chains.chat(exchange)
        assert not isinstance(stream, dict)
        await anext(stream)  # as the renderer does before it answers
        await stream.aclose()  # as the server's clean-up does for a client gone before reading

    gw.run(open_and_drop())
    # Recorded (with what was counted, the prompt at least) and priced, not silently dropped.
    assert info.total_tokens > 0
    assert info.cost_usd is not None
    assert emu.stats()["providers"]["openai"]["gpt-4o-mini"]["requests"] == 1


def test_a_fanout_stream_closed_before_it_is_read_is_charged_for_its_branches(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu))
    body = {
        "model": "fast",
        "models": ["fast", "fast"],
        "fanout": "first",
        "stream": True,
        "messages": [{"role": "user", "content": "raced but never read"}],
    }
    info = RequestInfo(request_id="fanout-never-read")
    exchange = chat_exchange(body, info, RequestLimits())

    async def open_and_drop() -> None:
        stream = await gw.gateway.chains.chat(exchange)
        assert not isinstance(stream, dict)
        await anext(stream)
        await stream.aclose()  # as the streamed response's clean-up does for a client gone

    gw.run(open_and_drop())
    # The request is charged what its branches cost (its budget is settled from this).
    assert info.cost_usd is not None
    assert info.cost_usd > 0


def test_a_finished_stream_leaves_no_async_generator_to_the_garbage_collector(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    """An async generator left unclosed is closed by the event loop when it is collected: a
    wake-up of the loop from the collector and a task, per stream. Every generator a stream
    makes (the provider's bytes, its events, each stage's wrapper, the response's events) is
    closed by the code that made it: chat completions from each provider, the Messages API
    and the Responses API."""
    models = f"""
  - name: claude
    provider: anthropic
    model: claude-sonnet-4-20250514
    api_base: {emu.url}
    api_key: {EMULATOR_KEY}
  - name: gem
    provider: gemini
    model: gemini-2.0-flash
    api_base: "{emu.url}"
    api_key: {EMULATOR_KEY}
"""
    gw = start_gateway(emulator_yaml(emu, models))
    said = [{"role": "user", "content": "count to three"}]
    collected: list[str] = []
    hooks = gw.run(_hook_finalizer(collected))
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            for model in ("fast", "claude", "gem"):
                body: dict[str, Any] = {"model": model, "stream": True, "messages": said}
                with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    assert response.status_code == 200, model
                    events = [line for line in response.iter_lines() if line.startswith("data:")]
                assert events[-1] == "data: [DONE]", model
                assert len(events) > 2, model
            for path, body in (
                ("/v1/messages", {"model": "claude", "max_tokens": 64, "messages": said}),
                ("/v1/responses", {"model": "fast", "input": "count to three"}),
            ):
                with client.stream("POST", path, json={**body, "stream": True}) as response:
                    assert response.status_code == 200, path
                    events = [line for line in response.iter_lines() if line.startswith("data:")]
                assert len(events) > 2, path
    finally:
        gw.run(_restore(hooks))
    assert collected == []


async def _hook_finalizer(collected: list[str]) -> Any:
    """On the gateway's loop thread (the hooks are per thread): note each async generator
    the collector finalizes, then let the loop's own finalizer close it."""
    hooks = sys.get_asyncgen_hooks()

    def finalizer(agen: Any) -> None:
        collected.append(agen.ag_code.co_qualname)
        hooks.finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    return hooks


async def _restore(hooks: Any) -> None:
    gc.collect()  # what nothing closed is finalized now, at the latest
    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=hooks.finalizer)
