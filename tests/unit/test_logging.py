"""Logging: JSON lines (or a console format), and secrets redacted from every line by
construction: nested values, exception text, the standard library's records too."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from ai_gateway.observability.logging import (
    MAX_PENDING_LINES,
    LineWriter,
    SecretScrubber,
    configure_logging,
    event_writer,
    flush_all,
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
    writer("request", dict(fields))
    writer("request", lambda: dict(fields))  # fields gathered when the line is rendered
    get_logger("ai_gateway.access").info("request", **fields)
    fast, lazy, slow = (json.loads(line) for line in stream.getvalue().splitlines())
    assert CANARY not in stream.getvalue()
    assert fast.pop("timestamp").endswith("Z")
    assert lazy.pop("timestamp").endswith("Z")
    slow.pop("timestamp")
    assert fast == slow
    assert lazy == slow
    assert fast["token"] == REDACTED


def test_event_writer_follows_the_level_and_the_console_format(configure: Configure) -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream, cache_loggers=False)
    assert event_writer("ai_gateway.access") is None  # info is filtered out: no work at all
    stream = configure("console")
    writer = event_writer("ai_gateway.access")
    assert writer is not None
    writer("request", {"route": "/chat/completions", "key": CANARY})
    writer("request", lambda: {"route": "/embeddings"})
    text = stream.getvalue()
    assert "request" in text
    assert "/chat/completions" in text
    assert "/embeddings" in text
    assert CANARY not in text


class CountingStream(io.StringIO):
    """A buffer that counts the writes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_batched_lines_go_out_in_one_write_when_the_loop_iteration_ends() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    for i in range(5):
        writer.deferred(str, f"line {i}")
    assert stream.getvalue() == ""
    assert stream.writes == 0
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(5)]
    assert stream.writes == 1
    writer.deferred(str, "next")  # a new batch is scheduled again
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines()[-1] == "next"
    assert stream.writes == 2


async def test_lines_written_at_once_come_after_the_kept_ones() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    writer.deferred(str, "access 1")
    writer.msg("error")
    writer.deferred(str, "access 2")
    await asyncio.sleep(0)
    assert stream.getvalue().splitlines() == ["access 1", "error", "access 2"]


async def test_a_full_batch_is_written_without_waiting() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)
    for i in range(MAX_PENDING_LINES):
        writer.deferred(str, str(i))
    assert len(stream.getvalue().splitlines()) == MAX_PENDING_LINES
    assert stream.writes == 1


def test_without_an_event_loop_lines_are_written_at_once() -> None:
    stream = CountingStream()
    LineWriter(stream).deferred(str, "no loop here")
    assert stream.getvalue() == "no loop here\n"


async def test_kept_lines_are_written_before_standard_library_lines_and_at_exit(
    configure: Configure,
) -> None:
    stream = configure()
    access = event_writer("ai_gateway.access")
    assert access is not None
    access("request", {"status": 200})
    logging.getLogger("uvicorn.error").warning("after the access line")
    access("request", {"status": 201})
    flush_all()  # what the interpreter's exit runs
    assert [(line["event"], line.get("status")) for line in lines(stream)] == [
        ("request", 200),
        ("after the access line", None),
        ("request", 201),
    ]


async def test_an_event_that_cannot_be_rendered_does_not_take_the_others_down() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)

    def broken(_: object) -> str:
        raise RuntimeError("the fields could not be gathered")

    writer.deferred(str, "before")
    writer.deferred(broken, None)
    writer.deferred(str, "after")
    await asyncio.sleep(0)
    before, failed, after = stream.getvalue().splitlines()
    assert (before, after) == ("before", "after")
    assert json.loads(failed) == {
        "event": "log_event_unrenderable",
        "level": "error",
        "error_type": "RuntimeError",
    }
    writer.msg("still writing")
    assert stream.getvalue().splitlines()[-1] == "still writing"


def test_a_loop_closed_before_its_flush_does_not_hold_the_next_loops_lines() -> None:
    stream = CountingStream()
    writer = LineWriter(stream)

    async def log(line: str) -> None:
        writer.deferred(str, line)

    first = asyncio.new_event_loop()

    def log_and_stop() -> None:
        writer.deferred(str, "first")
        first.stop()  # the loop stops before the iteration that would flush

    first.call_soon(log_and_stop)
    first.run_forever()
    first.close()
    assert stream.getvalue() == ""
    second = asyncio.new_event_loop()
    second.run_until_complete(log("second"))
    second.run_until_complete(asyncio.sleep(0))  # the second loop's iteration ends
    second.close()
    assert stream.getvalue().splitlines() == ["first", "second"]
