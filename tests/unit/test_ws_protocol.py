"""The WebSocket endpoint's messages without a socket: reading them (api/ws_protocol.py)."""

from __future__ import annotations

import json

import pytest

from ai_gateway.api.ws_protocol import Incoming, ProtocolError, parse


def test_messages_are_read_and_checked() -> None:
    body = {"model": "fast", "messages": []}
    request = {"type": "request", "id": "r1", "endpoint": "embeddings", "body": body}
    assert parse(json.dumps(request)) == Incoming("request", "r1", "embeddings", body)
    assert parse(b'{"type": "cancel", "id": "r1"}') == Incoming("cancel", "r1")
    assert parse('{"type": "ping"}') == Incoming("ping")
    assert parse('{"type": "auth", "token": "sk-1"}') == Incoming("auth", token="sk-1")


@pytest.mark.parametrize(
    ("message", "request_id", "code"),
    [
        ("{oops", None, "invalid_message"),
        ("[1, 2]", None, "invalid_message"),
        ('{"id": "a"}', "a", "unknown_type"),
        (
            '{"type": "request", "id": "a", "endpoint": "images", "body": {}}',
            "a",
            "unknown_endpoint",
        ),
        (
            '{"type": "request", "id": "a", "endpoint": "embeddings", "body": []}',
            "a",
            "invalid_message",
        ),
        ('{"type": "request", "endpoint": "embeddings", "body": {}}', None, "invalid_message"),
        ('{"type": "cancel", "id": ""}', None, "invalid_message"),
        ('{"type": "cancel", "id": "' + "x" * 129 + '"}', None, "invalid_message"),
        ('{"type": "auth"}', None, None),
    ],
)
def test_a_bad_message_names_its_id_when_it_can(
    message: str, request_id: str | None, code: str | None
) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(message)
    assert raised.value.request_id == request_id
    assert raised.value.code == code
    assert raised.value.status == 400
