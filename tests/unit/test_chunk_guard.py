"""The output rules over streamed chunks (`ChunkGuard`): every streamed text of a choice is
filtered, whatever field carries it, and the held-back tails go out with the finishing chunk."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

from ai_gateway.errors import GuardrailBlockedError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chunk_guard import ChunkGuard
from ai_gateway.pipeline.guard import Guard, GuardrailSets
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import SecurityConfig

EMAIL = "jane.doe@example.com"


def chunk_guard(action: str = "redact") -> ChunkGuard:
    security = SecurityConfig.model_validate(
        {
            "guardrails": {
                "policies": [
                    {
                        "name": "out",
                        "rules": [{"name": "mails", "detector": "email", "action": action}],
                    }
                ],
                "default": ["out"],
            }
        }
    )
    sets = GuardrailSets(security.guardrails)
    rules = sets.for_request(None, "m")
    assert rules is not None
    stage = Guard(sets, Metrics(), None)
    return ChunkGuard(rules, partial(stage.findings, info=RequestInfo(request_id="r")))


def pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream(guard: ChunkGuard, deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deltas as they reach the client: the last one carries finish_reason."""
    out = []
    for n, delta in enumerate(deltas):
        finish = "stop" if n == len(deltas) - 1 else None
        chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        guard.apply(chunk)
        out.append(chunk["choices"][0]["delta"])
    return out


def joined(deltas: list[dict[str, Any]], field: str) -> str:
    return "".join(d.get(field) or "" for d in deltas)


@pytest.mark.parametrize("field", ["content", "refusal", "reasoning_content", "reasoning"])
def test_every_streamed_text_field_is_redacted(field: str) -> None:
    text = f"write to {EMAIL} and to {EMAIL}, thanks"
    deltas = stream(chunk_guard(), [{field: p} for p in pieces(text)] + [{}])
    assert joined(deltas, field) == "write to [REDACTED:email] and to [REDACTED:email], thanks"


def test_tool_call_arguments_are_redacted_per_call_and_released_at_the_end() -> None:
    first = json.dumps({"to": EMAIL, "cc": EMAIL})
    second = json.dumps({"note": "no address"})
    deltas: list[dict[str, Any]] = [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "a",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        *({"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces(first)),
        {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": second}}]},
        {"function_call": {"arguments": f'{{"x": "{EMAIL}"}}'}},
        {},
    ]
    out = stream(chunk_guard(), deltas)
    calls: dict[int, str] = {}
    legacy = ""
    for delta in out:
        for call in delta.get("tool_calls") or []:
            calls[call["index"]] = calls.get(call["index"], "") + call["function"]["arguments"]
        legacy += (delta.get("function_call") or {}).get("arguments", "")
    assert json.loads(calls[0]) == {"to": "[REDACTED:email]", "cc": "[REDACTED:email]"}
    assert json.loads(calls[1]) == {"note": "no address"}
    assert json.loads(legacy) == {"x": "[REDACTED:email]"}
    assert out[0]["tool_calls"][0]["id"] == "a"  # ids and names pass untouched


def test_tails_of_a_stream_that_never_finished_are_sent() -> None:
    guard = chunk_guard()
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"refusal": f"no, {EMAIL}"}}]}
    guard.apply(chunk)
    assert EMAIL not in json.dumps(chunk)
    tails = guard.tails()
    assert [t["choices"][0]["delta"] for t in tails] == [{"refusal": "no, [REDACTED:email]"}]


def test_a_block_rule_on_tool_call_arguments_ends_the_stream() -> None:
    guard = chunk_guard("block")
    call = {"index": 0, "function": {"arguments": json.dumps({"to": EMAIL})}}
    with pytest.raises(GuardrailBlockedError) as info:
        stream(guard, [{"tool_calls": [call]}, {}])
    assert "choices[0].delta.tool_calls[0].function.arguments" in str(info.value)


def test_a_text_ends_before_the_next_field_begins() -> None:
    """The reasoning's held-back tail goes out when the content starts, not at the finish: a
    client (and the Messages API's thinking block) gets each text whole before the next."""
    reasoning = f"ask {EMAIL}"
    deltas = stream(chunk_guard(), [{"reasoning_content": reasoning}, {"content": "Done."}, {}])
    assert joined(deltas[:1], "reasoning_content") != "ask [REDACTED:email]"  # held back
    assert deltas[1]["reasoning_content"].endswith("[REDACTED:email]")
    assert joined(deltas, "reasoning_content") == "ask [REDACTED:email]"
    assert "reasoning_content" not in deltas[2]
    assert joined(deltas, "content") == "Done."
