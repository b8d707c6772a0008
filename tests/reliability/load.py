"""The load a scenario drives, and what each answer looked like to its client.

Every request is checked as a client would see it:

- a 200 answer has content (a non-streamed completion has a message with text; a stream has
  content chunks and ends with `data: [DONE]`, or with an OpenAI-style error event when it fails
  after it started), never an empty 200 or a stream cut silently;
- any other status has an OpenAI-style error body (`{"error": {"message", "type", ...}}`);
- the answer completes within a bound (a hang is a failure, however it ends).

`problem` names the first thing a client should never see; transport failures (no HTTP
answer, or a stream cut by a dead server) are kept apart in `transport`, since some scenarios
(kill -9) expect a bounded number of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CHAT = "/v1/chat/completions"


@dataclass
class Outcome:
    status: int  # 0: no HTTP answer
    stream: bool
    seconds: float
    request_id: str | None = None
    problem: str | None = None
    transport: str | None = None
    error_code: str | None = None
    stream_error: bool = False
    started: float = 0.0
    client_id: str | None = None  # the x-request-id the client sent, if any


def _openai_error(data: Any) -> tuple[bool, str | None]:
    err = data.get("error") if isinstance(data, dict) else None
    if not (isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]):
        return False, None
    if not isinstance(err.get("type"), str):
        return False, None
    code = err.get("code")
    return True, str(code) if code is not None else str(err["type"])


def _completion_has_content(data: Any) -> bool:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        return False
    message = choices[0].get("message") or {}
    return bool(message.get("content") or message.get("tool_calls"))


async def _check_stream(resp: aiohttp.ClientResponse, out: Outcome) -> None:
    content = 0
    ended = False
    async for raw in resp.content:
        line = raw.decode(errors="replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            ended = True
            break
        event = json.loads(data)
        if "error" in event:
            ok, code = _openai_error(event)
            out.stream_error, out.error_code, ended = True, code, True
            if not ok:
                out.problem = f"stream error event not OpenAI-style: {data[:200]}"
            break
        for choice in event.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                content += 1
    if not ended:
        out.problem = "stream ended without data: [DONE] or an error event"
    elif content == 0 and not out.stream_error:
        out.problem = "empty 200: a stream with no content"


async def request(
    session: aiohttp.ClientSession,
    base: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    bound: float = 30.0,
    path: str = CHAT,
) -> Outcome:
    stream = bool(body.get("stream"))
    out = Outcome(status=0, stream=stream, seconds=0.0, started=time.monotonic())
    out.client_id = (headers or {}).get("x-request-id")
    try:
        async with asyncio.timeout(bound):
            async with session.post(base + path, json=body, headers=headers) as resp:
                out.status = resp.status
                out.request_id = resp.headers.get("x-gateway-request-id")
                if resp.status == 200 and stream:
                    await _check_stream(resp, out)
                else:
                    raw = await resp.read()
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        data = None
                    if resp.status == 200:
                        if not _completion_has_content(data):
                            out.problem = f"empty 200: {raw[:200]!r}"
                    else:
                        ok, out.error_code = _openai_error(data)
                        if not ok:
                            out.problem = f"{resp.status} not OpenAI-style: {raw[:200]!r}"
    except TimeoutError:
        out.problem = f"no complete answer within {bound:.0f}s (hang)"
    except (aiohttp.ClientError, ConnectionError) as exc:
        out.transport = type(exc).__name__
    except ValueError as exc:  # a stream event that is not JSON
        out.problem = f"unreadable stream event: {exc}"
    out.seconds = time.monotonic() - out.started
    return out


def chat_body(index: int, stream_every: int = 2, model: str = "fast") -> dict[str, Any]:
    """Request `index` of a workload: one in `stream_every` streamed, picked by a hash of the
    index (not every n-th: a round-robin balancer would send all streams to one instance)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"reliability request {index}"}],
        "max_tokens": 24,
    }
    if stream_every and (index * 2654435761 >> 7) % stream_every == 0:
        body["stream"] = True
    return body


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, out: Outcome) -> None:
        self.outcomes.append(out)

    def problems(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem]

    def answered_ids(self) -> list[str]:
        """Gateway request ids of every request that got an HTTP answer."""
        return [o.request_id for o in self.outcomes if o.status and o.request_id]

    def summary(self) -> dict[str, Any]:
        times = sorted(o.seconds for o in self.outcomes)
        statuses = Counter(str(o.status or "no answer") for o in self.outcomes)
        problems = self.problems()
        return {
            "requests": len(self.outcomes),
            "ok": sum(1 for o in self.outcomes if o.status == 200 and not o.stream_error),
            "statuses": dict(sorted(statuses.items())),
            "stream_error_events": sum(1 for o in self.outcomes if o.stream_error),
            "transport_errors": sum(1 for o in self.outcomes if o.transport),
            "error_codes": dict(Counter(o.error_code for o in self.outcomes if o.error_code)),
            "problems": len(problems),
            "problem_examples": sorted({o.problem or "" for o in problems})[:5],
            "p50_s": round(times[len(times) // 2], 3) if times else None,
            "p99_s": round(times[int(len(times) * 0.99)], 3) if times else None,
            "max_s": round(times[-1], 3) if times else None,
        }


async def drive(
    send: Callable[[int], Awaitable[Outcome]],
    tally: Tally,
    *,
    concurrency: int,
    duration: float,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """`concurrency` workers call `send(index)` until `duration` seconds have passed (or `stop`
    is set); with `rate`, requests start at most `rate` per second in total."""
    deadline = time.monotonic() + duration
    counter = iter(range(10**9))
    interval = concurrency / rate if rate else 0.0

    async def worker(offset: int) -> None:
        next_at = time.monotonic() + (interval * offset / concurrency)
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            tally.add(await send(next(counter)))

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


def session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=None),
    )
