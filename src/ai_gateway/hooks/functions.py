"""The two kinds of hook function, behind one call: `await function(ctx)` returns what the hook
returned (checked by the runner, hooks/runner.py), or raises.

- `PythonFunction`: `module:function`, imported at start. An `async def` is awaited on the event
  loop; a plain `def` runs in a worker thread, or on the event loop when declared `inline` (for
  a function that does a few microseconds of work: nothing can cut it off).
- `HttpFunction`: a POST of the documented JSON (`payload`) to the hook's URL, signed with
  HMAC-SHA256 over `<timestamp>.<raw body>` (`sign`); the reply's JSON becomes a result
  (`result_of`). One pooled aiohttp session for all HTTP hooks, created on first use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import orjson

from ai_gateway.hooks.api import Continue, Drop, HookContext, Reject, Respond
from ai_gateway.hooks.config import HookConfig

SIGNATURE_HEADER = "x-gateway-signature"
TIMESTAMP_HEADER = "x-gateway-timestamp"
HOOK_HEADER = "x-gateway-hook"
MAX_REPLY_BYTES = 4 * 1024 * 1024


class MalformedResult(Exception):
    """A hook answered with something that is not a result (its message says what)."""


class BadStatus(Exception):
    """An HTTP hook's URL answered with a status other than 2xx."""


class HookFunction(Protocol):
    async def __call__(self, ctx: HookContext) -> object: ...


class LoadError(Exception):
    """A Python hook that cannot be imported (a config error at start)."""


class PythonFunction:
    def __init__(self, target: str, inline: bool) -> None:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any import failure of operator code
            raise LoadError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
        function = getattr(module, attr, None)
        if not callable(function):
            raise LoadError(f"{module_name!r} has no function {attr!r}")
        self._function: Callable[[HookContext], Any] = function
        self.is_async = inspect.iscoroutinefunction(function)
        self.inline = inline

    async def __call__(self, ctx: HookContext) -> object:
        if self.is_async:
            return await self._function(ctx)
        if self.inline:
            return self._function(ctx)
        return await asyncio.to_thread(self._function, ctx)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=<hex>` of HMAC-SHA256(secret, timestamp "." body)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload(ctx: HookContext) -> bytes:
    """The JSON an HTTP hook receives (docs/hooks.md)."""
    document: dict[str, Any] = {
        "hook": ctx.hook,
        "point": ctx.point,
        "request_id": ctx.request_id,
        "endpoint": ctx.endpoint,
        "model": ctx.model,
        "stream": ctx.stream,
        "caller": dataclasses.asdict(ctx.caller),
        "body": ctx.body,
    }
    if ctx.request is not None:
        document["request"] = ctx.request
    if ctx.record is not None:
        document["record"] = dataclasses.asdict(ctx.record)
    return orjson.dumps(document, default=str)


def result_of(reply: object) -> object:
    """A reply's JSON as a result: `{"action": "continue", "body"?}`, `{"action": "reject",
    "message", "status"?, "code"?}`, `{"action": "respond", "answer"}`, `{"action": "drop"}`."""
    if not isinstance(reply, dict):
        raise MalformedResult("the reply is not a JSON object")
    action = reply.get("action", "continue")
    if action == "continue":
        body = reply.get("body")
        if body is not None and not isinstance(body, dict):
            raise MalformedResult("`body` is not an object")
        return Continue(body=body)
    if action == "reject":
        message, status = reply.get("message"), reply.get("status", 400)
        code = reply.get("code", "rejected_by_hook")
        if not isinstance(message, str) or type(status) is not int or not isinstance(code, str):
            raise MalformedResult("a reject needs a string `message`, an integer `status`")
        return Reject(message=message, status=status, code=code)
    if action == "respond":
        answer = reply.get("answer")
        if not isinstance(answer, dict):
            raise MalformedResult("a respond needs an `answer` object")
        return Respond(answer=answer)
    if action == "drop":
        return Drop()
    raise MalformedResult(f"unknown action {str(action)[:40]!r}")


class HttpClient:
    """The pooled session HTTP hooks share."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100), raise_for_status=False
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpFunction:
    def __init__(self, config: HookConfig, client: HttpClient) -> None:
        assert config.url is not None
        assert config.secret is not None
        self._name = config.name
        self._url = config.url
        self._secret = config.secret.get_secret_value().encode()
        self._client = client

    async def __call__(self, ctx: HookContext) -> object:
        body = payload(ctx)
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            HOOK_HEADER: self._name,
        }
        async with self._client.session().post(self._url, data=body, headers=headers) as reply:
            if reply.status == 204:
                return None
            if not 200 <= reply.status < 300:
                raise BadStatus(f"the hook's URL answered HTTP {reply.status}")
            raw = await reply.content.read(MAX_REPLY_BYTES + 1)
        if len(raw) > MAX_REPLY_BYTES:
            raise MalformedResult("the reply is larger than 4 MiB")
        if not raw.strip():
            return None
        try:
            return result_of(orjson.loads(raw))
        except orjson.JSONDecodeError:
            raise MalformedResult("the reply is not JSON") from None


def build_function(config: HookConfig, client: HttpClient) -> HookFunction:
    if config.python is not None:
        return PythonFunction(config.python, config.inline)
    return HttpFunction(config, client)
