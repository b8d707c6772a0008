"""The shared token rule, reply text and schema placeholders (no network)."""

from __future__ import annotations

import base64
import struct

from ai_gateway.emulator import model as m
from ai_gateway.emulator import text as tx


def _prompt(*turns: m.Turn, **kwargs: object) -> m.Prompt:
    return m.Prompt(turns=turns, **kwargs)  # type: ignore[arg-type]


def _user(text: str) -> m.Turn:
    return m.Turn("user", (m.text_part(text),))


def test_token_rule_counts_words_overhead_images_and_tools() -> None:
    prompt = _prompt(
        m.Turn("system", (m.text_part("be brief"),)),
        m.Turn("user", (m.text_part("look at this"), m.image_part())),
        tools=(m.Tool("f", {}),),
    )
    expected = (3 + 2) + (3 + 3 + tx.IMAGE_TOKENS) + tx.TOOL_DEFINITION_TOKENS
    assert m.prompt_tokens(prompt) == expected


def test_reply_quotes_the_user_and_pieces_rejoin_to_the_text() -> None:
    (completion,) = m.complete(_prompt(_user("What is the capital of France today please")))
    assert completion.text.startswith("Emulated reply to: What is the capital of France today")
    assert "".join(completion.pieces) == completion.text
    assert completion.tokens == len(completion.pieces) == tx.count_tokens(completion.text)
    assert completion.finish == "stop"


def test_words_marker_sets_the_reply_length() -> None:
    (completion,) = m.complete(_prompt(_user("go [[words:40]]")))
    assert completion.tokens == 3 + 1 + 40
    assert "[[" not in completion.text


def test_reply_marker_scripts_the_reply_verbatim() -> None:
    script = "Here it is:\n```python\ndef f() -> int:\n    return 1\n```\n"
    marker = base64.urlsafe_b64encode(script.encode()).decode()
    (completion,) = m.complete(_prompt(_user(f"write f [[reply:{marker}]]")))
    assert completion.text == script
    assert "".join(completion.pieces) == script
    (plain,) = m.complete(_prompt(_user("write f [[reply:%%%]]")))  # not base64: the usual reply
    assert plain.text.startswith("Emulated reply to:")


def test_max_tokens_truncates_with_length() -> None:
    (completion,) = m.complete(_prompt(_user("hello"), max_tokens=3))
    assert completion.text == "Emulated reply to:"
    assert (completion.finish, completion.tokens) == ("length", 3)


def test_stop_sequence_cuts_before_the_match() -> None:
    (completion,) = m.complete(_prompt(_user("hello"), stop=("ipsum", "reply")))
    assert completion.text == "Emulated "
    assert (completion.finish, completion.stop_sequence) == ("stop_sequence", "reply")


def test_tool_is_called_with_required_arguments_from_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 3},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "verbose": {"type": "boolean"},
        },
        "required": ["city", "days", "unit"],
    }
    prompt = _prompt(_user("weather?"), tools=(m.Tool("get_weather", schema),))
    (completion,) = m.complete(prompt)
    (call,) = completion.tool_calls
    assert call.name == "get_weather"
    assert dict(call.arguments) == {"city": "example", "days": 3, "unit": "c"}
    assert completion.finish == "tool_calls"


def test_parallel_marker_calls_two_tools_and_respects_the_parallel_switch() -> None:
    tools = (m.Tool("a", {}), m.Tool("b", {}), m.Tool("c", {}))
    turns = (_user("both [[parallel_tools]]"),)
    (both,) = m.complete(m.Prompt(turns=turns, tools=tools))
    assert [c.name for c in both.tool_calls] == ["a", "b"]
    single = m.Prompt(turns=turns, tools=tools, tool_choice=m.ToolChoice("auto", parallel=False))
    assert [c.name for c in m.complete(single)[0].tool_calls] == ["a"]
    forced = m.Prompt(turns=turns, tools=tools, tool_choice=m.ToolChoice("required", name="c"))
    assert [c.name for c in m.complete(forced)[0].tool_calls] == ["c", "a"]


def test_after_a_tool_result_the_reply_quotes_it() -> None:
    turns = (
        _user("weather?"),
        m.Turn("assistant", (m.tool_call_part("get_weather", {"city": "Paris"}),)),
        m.Turn("tool", (m.tool_result_part("sunny and 21 degrees"),)),
    )
    (completion,) = m.complete(m.Prompt(turns=turns, tools=(m.Tool("get_weather", {}),)))
    assert not completion.tool_calls
    assert completion.text.startswith("Emulated reply to tool result: sunny and 21 degrees")


def test_json_schema_output_has_every_property() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            "score": {"anyOf": [{"type": "null"}, {"type": "number"}]},
        },
        "$defs": {"tag": {"type": "string", "format": "email"}},
    }
    value = tx.schema_placeholder(schema, all_properties=True)
    assert value == {"name": "example", "tags": ["user@example.com"], "score": 1.5}


def test_gemini_style_uppercase_schema_types() -> None:
    schema = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]}
    assert tx.schema_placeholder(schema, all_properties=False) == {"n": 1}


def test_embedding_vectors_are_deterministic_unit_float32_vectors() -> None:
    first = tx.embedding_vector("hello", 16)
    assert first == tx.embedding_vector("hello", 16)
    assert first != tx.embedding_vector("hello!", 16)
    assert abs(sum(v * v for v in first) - 1.0) < 1e-5
    packed = base64.b64encode(tx.pack_float32(first))
    assert list(struct.unpack("<16f", base64.b64decode(packed))) == first
