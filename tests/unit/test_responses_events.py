"""Chat chunks as the Responses API's stream events (responses/events.py), alone: the order of
the events for reasoning, text, refusals, tool calls and a file search, their sequence numbers,
the final Response, a failed stream; every event checked against the official SDK's own event
types."""

from __future__ import annotations

import json
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from ai_gateway.responses import output as out
from ai_gateway.responses.events import ResponseStream
from ai_gateway.responses.request import translate
from ai_gateway.schemas.responses import ResponsesRequest
from ai_gateway.schemas.validation import parse_body

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def echo() -> dict[str, Any]:
    body = {"model": "m", "input": "x"}
    return translate(body, parse_body(ResponsesRequest, body), [], True).echo


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def run_stream(
    chunks: list[dict[str, Any]], prefix: list[Any] | None = None
) -> tuple[list[Any], ResponseStream]:
    skeleton = out.response_object("resp_1", 1, "m", echo(), status="in_progress", output=[])
    stream = ResponseStream(skeleton)
    events = stream.opening(prefix or [])
    for c in chunks:
        events += stream.feed(c)
    events += stream.finish(2)
    for event in events:
        EVENTS.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events, stream


def test_text_then_tool_calls_stream() -> None:
    chunks = [
        chunk({"reasoning_content": "hm"}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}
                ]
            }
        ),
        chunk(
            {"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": ""}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]
    events, stream = run_stream(chunks)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "Hello"
    assert [o.type for o in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert json.loads(final.output[2].arguments) == {"a": 1}  # type: ignore[union-attr]
    assert final.usage is not None
    assert final.usage.total_tokens == 7
    assert stream.response["status"] == "completed"


def test_a_refusal_and_a_file_search_stream() -> None:
    searched = out.file_search_item("q", [], with_results=True)
    events, _ = run_stream([chunk({"refusal": "no"}), chunk({}, "stop")], [searched])
    kinds = [e["type"] for e in events]
    assert kinds[2:7] == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    assert "response.refusal.delta" in kinds
    assert "response.refusal.done" in kinds
    final = events[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["file_search_call", "message"]
    assert final["output"][1]["content"] == [{"type": "refusal", "refusal": "no"}]


def test_a_failed_stream() -> None:
    skeleton = out.response_object("resp_1", 1, "m", echo(), status="in_progress", output=[])
    stream = ResponseStream(skeleton)
    events = stream.opening() + stream.feed(chunk({"content": "par"}))
    events += stream.fail({"code": "server_error", "message": "upstream went away"})
    for event in events:
        EVENTS.validate_python(event)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "upstream went away"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["output"] == []  # the message never finished
