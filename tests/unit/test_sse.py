from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ai_gateway.streaming.sse import DONE, ServerSentEvent, SSEDecoder, encode_data

STREAM = (
    b"event: message_start\r\n"
    b'data: {"type":"message_start"}\r\n'
    b"\r\n"
    b": keep-alive comment\n"
    b"\n"
    b"data: first line\n"
    b"data:second line\n"
    b"id: 7\n"
    b"retry: 1500\n"
    b"\n"
    b'data: {"text":"caf\xc3\xa9 \xe2\x98\x95"}\r'
    b"\r"
    b"data: [DONE]\n\n"
)

EXPECTED = [
    ServerSentEvent(data='{"type":"message_start"}', event="message_start"),
    ServerSentEvent(data="first line\nsecond line", id="7", retry=1500),
    ServerSentEvent(data='{"text":"café ☕"}', id="7"),
    ServerSentEvent(data="[DONE]", id="7"),
]


def decode_in_pieces(data: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += decoder.feed(data[start:cut])
        start = cut
    assert not decoder.has_pending
    return events


def test_whole_stream_decodes_every_event_and_field() -> None:
    assert decode_in_pieces(STREAM, []) == EXPECTED


def test_every_single_split_point_gives_the_same_events() -> None:
    for cut in range(len(STREAM) + 1):
        assert decode_in_pieces(STREAM, [cut]) == EXPECTED, cut


def test_one_byte_at_a_time() -> None:
    assert decode_in_pieces(STREAM, list(range(len(STREAM)))) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_arbitrary_chunking_is_invisible(cuts: list[int]) -> None:
    assert decode_in_pieces(STREAM, cuts) == EXPECTED


def test_cr_at_chunk_end_followed_by_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent(data="a")]
    assert decoder.feed(b"\ndata: b\n\n") == [ServerSentEvent(data="b")]


def test_truncated_stream_is_reported_as_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"partial": tr') == []
    assert decoder.has_pending
    decoder2 = SSEDecoder()
    decoder2.feed(b"data: complete line but no blank line\n")
    assert decoder2.has_pending


def test_field_without_colon_and_unknown_fields() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data\nfoo: bar\n\n")
    assert events == [ServerSentEvent(data="")]


def test_encode_data_is_one_event_line() -> None:
    payload = {"text": "line1\nline2", "n": 1}
    encoded = encode_data(payload)
    assert encoded.startswith(b"data: ")
    assert encoded.endswith(b"\n\n")
    assert encoded.count(b"\n") == 2
    (event,) = SSEDecoder().feed(encoded)
    assert event.data == '{"text":"line1\\nline2","n":1}'
    assert DONE == b"data: [DONE]\n\n"
