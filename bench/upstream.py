"""A zero-latency, OpenAI-compatible upstream for benchmarks.

uvloop + a raw ``asyncio.Protocol`` + the httptools parser, with keep-alive and pipelining.
Responses are built once per (kind, model, ...) and then served as ready-made bytes, so the
cost of a request is one parse of the request and one ``write``.

- ``POST /v1/chat/completions``: a fixed ``chat.completion`` (with usage); with ``"stream": true``
  a short SSE stream of ``chat.completion.chunk`` events ending in ``data: [DONE]`` (a usage chunk
  too when ``stream_options.include_usage`` is true).
- ``POST /v1/embeddings``: one fixed 8-dimension embedding per input.
- ``GET /health``: ``{"status": "ok"}`` (readiness probe for the harness).
- anything else: a 404 (or 405 for a wrong method) OpenAI-style JSON error.

Run: ``python -m bench.upstream --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any, cast

import httptools
import orjson
import uvloop

CHAT_PATH = b"/v1/chat/completions"
EMBEDDINGS_PATH = b"/v1/embeddings"
HEALTH_PATH = b"/health"
DEFAULT_MODEL = "bench-model"
MAX_CACHED = 256
MAX_EMBEDDING_INPUTS = 2048
EMBEDDING = [0.0123, -0.0456, 0.0789, -0.0012, 0.0345, -0.0678, 0.0901, -0.0234]

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


def http_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    keep_alive: bool = True,
    chunked: bool = False,
    extra: bytes = b"",
) -> bytes:
    """Serialise a complete HTTP/1.1 response."""
    head = b"HTTP/1.1 %d %s\r\nserver: bench-upstream\r\ncontent-type: %s\r\n" % (
        status,
        _REASONS.get(status, b"Unknown"),
        content_type,
    )
    if chunked:
        head += b"transfer-encoding: chunked\r\n"
    else:
        head += b"content-length: %d\r\n" % len(body)
    if not keep_alive:
        head += b"connection: close\r\n"
    return head + extra + b"\r\n" + body


def error_body(message: str, err_type: str, code: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": err_type, "param": None, "code": code}}
    )


def chat_completion(model: str, created: int) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench0000000000000000000001",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        }
    )


def chat_stream(model: str, created: int, include_usage: bool) -> bytes:
    """The SSE events of a short streamed completion, encoded as HTTP chunks."""
    base: dict[str, Any] = {
        "id": "chatcmpl-bench0000000000000000000001",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_bench",
    }
    deltas: list[tuple[dict[str, str], str | None]] = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hello"}, None),
        ({"content": "!"}, None),
        ({}, "stop"),
    ]
    events = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]}
        for d, f in deltas
    ]
    if include_usage:
        usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        events.append({**base, "choices": [], "usage": usage})
    payloads = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    payloads.append(b"data: [DONE]\n\n")
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


def embeddings(model: str, count: int) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": EMBEDDING} for i in range(count)
            ],
            "model": model,
            "usage": {"prompt_tokens": 2 * count, "total_tokens": 2 * count},
        }
    )


class Responder:
    """Maps a parsed request to response bytes; caches what it builds (bounded)."""

    def __init__(self) -> None:
        self._created = int(time.time())
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self._not_found = error_body("Unknown request URL.", "invalid_request_error", "not_found")
        self._health = orjson.dumps({"status": "ok"})

    def respond(self, method: bytes, url: bytes, body: bytes, keep_alive: bool) -> bytes:
        path = url.split(b"?", 1)[0]
        if path in (CHAT_PATH, EMBEDDINGS_PATH):
            if method != b"POST":
                msg = error_body("Use POST.", "invalid_request_error", "method_not_allowed")
                return http_response(405, msg, keep_alive=keep_alive, extra=b"allow: POST\r\n")
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                msg = error_body("Body must be a JSON object.", "invalid_request_error", "bad_json")
                return http_response(400, msg, keep_alive=keep_alive)
            model = payload.get("model")
            model = model if isinstance(model, str) and model else DEFAULT_MODEL
            if path == CHAT_PATH:
                return self._chat(payload, model, keep_alive)
            return self._embeddings(payload, model, keep_alive)
        if path == HEALTH_PATH and method == b"GET":
            return http_response(200, self._health, keep_alive=keep_alive)
        return http_response(404, self._not_found, keep_alive=keep_alive)

    def _chat(self, payload: dict[str, Any], model: str, keep_alive: bool) -> bytes:
        if payload.get("stream") is True:
            options = payload.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            key: tuple[Any, ...] = ("stream", model, usage, keep_alive)
            if (hit := self._cache.get(key)) is None:
                body = chat_stream(model, self._created, usage)
                hit = http_response(
                    200,
                    body,
                    content_type=b"text/event-stream",
                    keep_alive=keep_alive,
                    chunked=True,
                    extra=b"cache-control: no-cache\r\n",
                )
                self._store(key, hit)
            return hit
        key = ("chat", model, keep_alive)
        if (hit := self._cache.get(key)) is None:
            hit = http_response(200, chat_completion(model, self._created), keep_alive=keep_alive)
            self._store(key, hit)
        return hit

    def _embeddings(self, payload: dict[str, Any], model: str, keep_alive: bool) -> bytes:
        inputs = payload.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs else 1
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], int):
            count = 1  # a single tokenised input
        count = min(count, MAX_EMBEDDING_INPUTS)
        key = ("embeddings", model, count, keep_alive)
        if (hit := self._cache.get(key)) is None:
            hit = http_response(200, embeddings(model, count), keep_alive=keep_alive)
            self._store(key, hit)
        return hit

    def _store(self, key: tuple[Any, ...], value: bytes) -> None:
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = value


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parse with httptools, answer each request in order."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self._transport is not None:
                msg = error_body("Malformed HTTP request.", "invalid_request_error", "bad_request")
                self._transport.write(http_response(400, msg, keep_alive=False))
            self._close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._transport is None:
            return
        keep_alive = self._parser.should_keep_alive()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._transport.write(
            self._responder.respond(self._parser.get_method(), self._url, body, keep_alive)
        )
        if not keep_alive:
            self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


async def serve(host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    responder = Responder()
    server = await loop.create_server(
        lambda: UpstreamProtocol(responder), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"bench upstream listening on http://{host}:{port}/v1", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Zero-latency OpenAI-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
