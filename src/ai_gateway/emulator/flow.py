"""The one request flow every provider endpoint follows, and how answers are delivered.

``read body -> log request -> latency -> authenticate -> take fault -> (fault: delay /
status / drop) -> build answer (validation, model lookup, generation) -> deliver as JSON
or as a stream, applying mid-stream faults -> record statistics``.

A provider supplies a :class:`Dialect` (its authentication, error bodies, headers and
in-stream error frame) and a builder that turns a parsed body into an :class:`Answer`.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ai_gateway.emulator.faults import Fault
from ai_gateway.emulator.settings import EmulatorSettings
from ai_gateway.emulator.state import EmulatorState, state_of


class EmulatorError(Exception):
    """An error answer, rendered by the provider's :class:`Dialect`.

    ``code`` is the provider-specific error code/type when it differs from what the status
    implies; ``details`` extra body fields (for Gemini, ``error.details``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.details = details


@dataclass
class Answer:
    """A successful answer: a JSON body, or stream frames (SSE events or JSON-array parts)."""

    prompt_tokens: int
    completion_tokens: int
    body: Any = None
    frames: list[bytes] | None = None
    content_type: str = "text/event-stream"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Dialect(ABC):
    """What differs between providers in the request flow."""

    provider: str

    @abstractmethod
    def authenticate(self, request: web.Request, settings: EmulatorSettings) -> None:
        """Raise :class:`EmulatorError` when the request's credentials are not accepted."""

    @abstractmethod
    def error_body(self, err: EmulatorError) -> Any:
        """The provider's JSON error body."""

    @abstractmethod
    def fault_error(self, fault: Fault, model: str) -> EmulatorError:
        """The error a ``status`` fault produces."""

    @abstractmethod
    def overloaded(self) -> EmulatorError:
        """The error an ``error_event`` fault produces on a non-streaming request."""

    @abstractmethod
    def invalid_json(self) -> EmulatorError:
        """The error for a body that is not a JSON object."""

    def stream_error_frame(self) -> bytes | None:
        """The in-stream error frame, or None when the provider has none (then: drop)."""
        return None

    def keepalive_frame(self) -> bytes:
        """What the provider sends while a stream is silent (a `pause` fault's pings)."""
        return b": keep-alive\n\n"

    def headers(self) -> dict[str, str]:
        return {}

    def render_json(self, body: Any) -> bytes:
        return dumps(body).encode()

    def error_response(self, err: EmulatorError) -> web.Response:
        headers = self.headers()
        if err.retry_after is not None:
            value = err.retry_after
            headers["retry-after"] = str(int(value)) if value == int(value) else str(value)
        return web.Response(
            status=err.status,
            body=self.render_json(self.error_body(err)),
            content_type="application/json",
            headers=headers,
        )


Builder = Callable[[web.Request, Any, Fault | None], Awaitable[Answer]]
ModelOf = Callable[[web.Request, Any], str]


def _parse(raw: bytes) -> tuple[Any, bool]:
    if not raw:
        return None, False
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace"), False
    return body, isinstance(body, Mapping)


async def serve(
    request: web.Request, dialect: Dialect, build: Builder, model_of: ModelOf
) -> web.StreamResponse:
    """Answer one generation/embedding request through the shared flow."""
    state = state_of(request)
    body, ok = _parse(await request.read())
    state.requests.record(request, dialect.provider, body)
    model = model_of(request, body if ok else None)
    stats, provider = state.stats, dialect.provider
    stats.request(provider, model)
    if state.settings.latency_s > 0:
        await asyncio.sleep(state.settings.latency_s)
    fault: Fault | None = None
    try:
        dialect.authenticate(request, state.settings)
        fault = state.faults.take(provider, model)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "status":
            raise dialect.fault_error(fault, model)
        elif fault is not None and fault.kind == "drop":
            stats.dropped(provider, model)
            return _drop(request)
        if not ok:
            raise dialect.invalid_json()
        answer = await build(request, body, fault)
        if fault is not None and fault.kind == "error_event" and answer.frames is None:
            raise dialect.overloaded()
    except EmulatorError as err:
        stats.error(provider, model, err.status)
        return dialect.error_response(err)
    if answer.frames is None:
        return await _deliver_json(request, dialect, answer, fault, model)
    return await _deliver_stream(request, dialect, answer, fault, model)


async def serve_listing(
    request: web.Request, dialect: Dialect, build: Callable[[web.Request], Any]
) -> web.Response:
    """Answer a catalogue request (model listings): logged and authenticated, no faults."""
    state = state_of(request)
    state.requests.record(request, dialect.provider, None)
    try:
        dialect.authenticate(request, state.settings)
        body = build(request)
    except EmulatorError as err:
        return dialect.error_response(err)
    return web.Response(
        body=dialect.render_json(body), content_type="application/json", headers=dialect.headers()
    )


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection; aiohttp's attempt to answer afterwards fails quietly."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.StreamResponse(status=500)


async def _deliver_json(
    request: web.Request, dialect: Dialect, answer: Answer, fault: Fault | None, model: str
) -> web.StreamResponse:
    state: EmulatorState = state_of(request)
    payload = dialect.render_json(answer.body)
    if fault is not None and fault.kind == "drop_mid_stream":
        response = web.StreamResponse(headers=dialect.headers())
        response.content_type = "application/json"
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[: len(payload) // 2])
        state.stats.dropped(dialect.provider, model)
        _drop(request)
        return response
    state.stats.success(dialect.provider, model, answer.prompt_tokens, answer.completion_tokens)
    return web.Response(body=payload, content_type="application/json", headers=dialect.headers())


async def _deliver_stream(
    request: web.Request, dialect: Dialect, answer: Answer, fault: Fault | None, model: str
) -> web.StreamResponse:
    state = state_of(request)
    stats, provider = state.stats, dialect.provider
    frames = answer.frames or []
    cut: int | None = None
    if fault is not None and fault.kind in ("drop_mid_stream", "error_event"):
        cut = min(fault.after_chunks, max(len(frames) - 1, 0))
    response = web.StreamResponse(headers={**dialect.headers(), "Cache-Control": "no-cache"})
    response.content_type = answer.content_type
    try:
        await response.prepare(request)
        for index, frame in enumerate(frames):
            if index == cut and fault is not None:
                error_frame = dialect.stream_error_frame()
                if fault.kind == "error_event" and error_frame is not None:
                    await response.write(error_frame)
                    await response.write_eof()
                    stats.stream_error(provider, model)
                else:
                    stats.dropped(provider, model)
                    _drop(request)
                return response
            if index and state.settings.chunk_delay_s > 0:
                await asyncio.sleep(state.settings.chunk_delay_s)
            if fault is not None and fault.kind == "pause" and index == fault.after_chunks:
                await _pause(response, dialect, fault, answer.content_type)
            await response.write(frame)
        await response.write_eof()
    except ConnectionError:
        stats.client_disconnect(provider, model)
        return response
    stats.success(provider, model, answer.prompt_tokens, answer.completion_tokens)
    return response


async def _pause(
    response: web.StreamResponse, dialect: Dialect, fault: Fault, content_type: str
) -> None:
    """A `pause` fault: silence, or the provider's keep-alive frames every `ping_s`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + fault.seconds
    pings = fault.ping_s > 0 and content_type == "text/event-stream"
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(left, fault.ping_s) if pings else left)
        if pings and loop.time() < end:
            await response.write(dialect.keepalive_frame())


def sse_data(value: Any, newline: str = "\n") -> bytes:
    """One ``data:`` server-sent event."""
    return f"data: {dumps(value)}{newline}{newline}".encode()


def sse_event(name: str, value: Any) -> bytes:
    """One named server-sent event (``event:`` + ``data:``)."""
    return f"event: {name}\ndata: {dumps(value)}\n\n".encode()
