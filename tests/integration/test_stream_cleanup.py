"""A stream the gateway opened upstream is recorded, charged and closed however it ends, also
when nobody ever reads it (a client gone before the body started, a losing fan-out branch)."""

from __future__ import annotations

from ai_gateway.pipeline.exchange import chat_exchange
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer


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
