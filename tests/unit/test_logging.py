"""Logging: JSON lines (or a console format), and secrets redacted from every line by
construction: nested values, exception text, the standard library's records too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from ai_gateway.observability.logging import (
    SecretScrubber,
    configure_logging,
    event_writer,
    get_logger,
    secrets_of,
)
from ai_gateway.redaction import REDACTED
from ai_gateway.settings import load_config

CANARY = "canary-0f3e9c1d-provider-secret"  # no credential shape: only the config names it
Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """configure_logging into a buffer; the process's logging is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }

    def run(fmt: str = "json", secrets: tuple[str, ...] = (CANARY,)) -> io.StringIO:
        stream = io.StringIO()
        configure_logging("info", fmt, secrets=secrets, stream=stream, cache_loggers=False)
        return stream

    yield run
    structlog.reset_defaults()
    root.handlers[:], root.level = saved[0], saved[1]
    for name, (handlers, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_scrubber_reaches_nested_values_and_objects() -> None:
    scrub = SecretScrubber([CANARY, None, "abc"])  # too-short values are ignored
    event = {
        "event": f"failed with {CANARY}",
        "headers": {"authorization": f"Bearer {CANARY}", "n": 3},
        "attempts": [{"detail": f"key={CANARY}"}, ("sk-proj-abcdefghijkl",)],
        "error": ValueError(f"bad key {CANARY}"),
        "count": 2,
        "ok": True,
        "note": "abc stays",
    }
    out = dict(scrub(None, "info", event))
    assert CANARY not in str(out)
    assert "sk-proj-abcdefghijkl" not in str(out)
    assert out["event"] == f"failed with {REDACTED}"
    assert out["headers"] == {"authorization": f"Bearer {REDACTED}", "n": 3}
    assert out["attempts"] == [{"detail": f"key={REDACTED}"}, [REDACTED]]
    assert out["error"] == f"bad key {REDACTED}"
    assert (out["count"], out["ok"], out["note"]) == (2, True, "abc stays")


def test_json_lines_with_level_time_and_no_secret(configure: Configure) -> None:
    stream = configure()
    log = get_logger("test")
    log.info("request", request_id="r1", status=200, nested={"k": [CANARY]})
    try:
        raise RuntimeError(f"upstream echoed {CANARY}")
    except RuntimeError:
        log.exception("unhandled_error", request_id="r2")
    first, second = lines(stream)
    assert first["event"] == "request"
    assert first["level"] == "info"
    assert first["status"] == 200
    assert first["nested"] == {"k": [REDACTED]}
    assert str(first["timestamp"]).endswith("Z")
    assert second["level"] == "error"
    assert "RuntimeError: upstream echoed [redacted]" in str(second["exception"])
    assert CANARY not in stream.getvalue()


def test_standard_library_records_are_formatted_and_scrubbed_too(configure: Configure) -> None:
    stream = configure()
    try:
        raise ConnectionError(f"redis://:{CANARY}@db:6379 refused")
    except ConnectionError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI app %s", CANARY)
    (line,) = lines(stream)
    assert line["logger"] == "uvicorn.error"
    assert line["event"] == f"Exception in ASGI app {REDACTED}"
    assert "ConnectionError" in str(line["exception"])
    assert CANARY not in stream.getvalue()


def test_console_format_is_readable_and_scrubbed(configure: Configure) -> None:
    stream = configure("console")
    get_logger("test").info("request", route="/chat/completions", key=CANARY)
    text = stream.getvalue()
    assert not text.lstrip().startswith("{")
    assert "request" in text
    assert "route=/chat/completions" in text
    assert CANARY not in text


def test_secrets_of_names_every_configured_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", "master-canary-1")
    monkeypatch.setenv("AI_GATEWAY_REDIS_URL", "redis://:redis-pass-1@redis.internal:6379/0")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-canary-1")
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "models:\n"
        "  - name: fast\n"
        "    provider: openai\n"
        "    model: gpt-4o-mini\n"
        "    api_key: deployment-canary-1\n"
    )
    found = set(secrets_of(load_config(path)))
    assert {
        "master-canary-1",
        "anthropic-canary-1",
        "deployment-canary-1",
        "redis-pass-1",
        "redis://:redis-pass-1@redis.internal:6379/0",
    } <= found


def test_event_writer_fast_path_writes_the_structlog_line(configure: Configure) -> None:
    stream = configure("json")
    fields = {"request_id": "r1", "status": 200, "token": CANARY, "nested": {"k": [CANARY]}}
    writer = event_writer("ai_gateway.access")
    assert writer is not None
    structlog.contextvars.bind_contextvars(instance="a")
    try:
        writer("request", dict(fields))
        get_logger("ai_gateway.access").info("request", **fields)
    finally:
        structlog.contextvars.clear_contextvars()
    fast, slow = (json.loads(line) for line in stream.getvalue().splitlines())
    assert CANARY not in stream.getvalue()
    assert fast.pop("timestamp").endswith("Z")
    slow.pop("timestamp")
    assert fast == slow
    assert fast["instance"] == "a"
    assert fast["token"] == REDACTED


def test_event_writer_follows_the_level_and_the_console_format(configure: Configure) -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream, cache_loggers=False)
    assert event_writer("ai_gateway.access") is None  # info is filtered out: no work at all
    stream = configure("console")
    writer = event_writer("ai_gateway.access")
    assert writer is not None
    writer("request", {"route": "/chat/completions", "key": CANARY})
    text = stream.getvalue()
    assert "request" in text
    assert "/chat/completions" in text
    assert CANARY not in text
