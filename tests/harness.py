"""Test harness: real servers on real sockets (127.0.0.1 only), each stopped by its test.

- `LoopThread`: an asyncio loop in a background thread, for servers that live in this process.
- `EmulatorServer`: the project's provider emulator, with helpers for its control endpoints.
- `GatewayServer`: the gateway app under uvicorn (httptools), started from a `Config`.
- `SlowSSEUpstream`: a raw-socket OpenAI-style stream that records when its client went away.
- `start_process` / `wait_http`: for servers run as separate processes (the CLI, fakellm).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from ai_gateway.app import create_app
from ai_gateway.emulator.app import EmulatorSettings, start
from ai_gateway.observability.tracing import Tracing
from ai_gateway.settings import Config, load_config

EMULATOR_KEY = "sk-emulator-provider-key-0000"

T = TypeVar("T")
VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            self.run(drain(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class EmulatorServer:
    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self._thread = LoopThread("emulator")
        self._runner, self.port = self._thread.run(start(settings or EmulatorSettings()))
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def add_faults(self, *faults: dict[str, Any]) -> None:
        self.http.post("/_emulator/faults", json={"faults": list(faults)}).raise_for_status()

    def requests(self, limit: int = 50) -> list[dict[str, Any]]:
        resp = self.http.get("/_emulator/requests", params={"limit": limit})
        resp.raise_for_status()
        data = resp.json()
        return data["requests"] if isinstance(data, dict) else data

    def stats(self) -> dict[str, Any]:
        resp = self.http.get("/_emulator/stats")
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.http.delete("/_emulator/faults").raise_for_status()
        self.http.delete("/_emulator/requests").raise_for_status()
        self.http.delete("/_emulator/stats").raise_for_status()
        self.http.delete("/_emulator/prompt-cache").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        with contextlib.suppress(Exception):
            self._thread.run(self._runner.cleanup(), timeout=15)
        self._thread.stop()


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayServer:
    def __init__(self, config: Config, tracing: Tracing | None = None) -> None:
        self.app = create_app(config, tracing=tracing)
        self._sock = bound_socket()
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        uv_config = uvicorn.Config(
            self.app,
            http="httptools",
            ws="websockets-sansio",  # as `ai-gateway serve` (serving.py)
            ws_per_message_deflate=config.websocket.compression,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(uv_config)
        self._thread = LoopThread("gateway")
        self._done = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[self._sock]), self._thread.loop
        )
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._done.done():
                self._done.result()
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run `coro` on the gateway's own event loop (for tests of one stage's behaviour)."""
        return self._thread.run(coro, timeout)

    def stop(self) -> None:
        """Shut down gracefully (the lifespan flushes the writer); a second call does nothing."""
        if self._server.should_exit:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            self._done.result(15)
        self._thread.stop()
        self._sock.close()


def config_from_yaml(tmp_path: Path, text: str, overrides: dict[str, Any] | None = None) -> Config:
    path = tmp_path / f"gateway-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    return load_config(path, overrides)


class SlowSSEUpstream:
    """An OpenAI-compatible streaming upstream that waits `first_delay` seconds, sends one
    chunk, then one more every `interval` seconds, and records when the gateway closes the
    connection (`closed`)."""

    def __init__(self, chunks: int = 50, interval: float = 0.2, first_delay: float = 0.0) -> None:
        self._chunks = chunks
        self._interval = interval
        self._first_delay = first_delay
        self.closed = threading.Event()
        self.first_sent = threading.Event()
        self._thread = LoopThread("slow-upstream")
        self._server = self._thread.run(self._start())
        self.port = self._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}/v1"

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if self._first_delay:
                # Wait before answering; a read that returns EOF means the client hung up.
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), self._first_delay) == b"":
                        return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for index in range(self._chunks):
                event = (
                    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,'
                    b'"model":"slow","choices":[{"index":0,"delta":{"content":"w%d "},'
                    b'"finish_reason":null}]}\n\n' % index
                )
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                self.first_sent.set()
                await asyncio.sleep(self._interval)
                if reader.at_eof():
                    break
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            # Reading returns EOF once the gateway has closed its side.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(), timeout=5)
            self.closed.set()
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()  # on the server's own loop: asyncio.Server is not thread-safe

        self._thread.run(close())
        self._thread.stop()


def output(proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """Everything a process started by `start_process` printed, once it has exited."""
    proc.wait(timeout)
    proc.reader.join(timeout)  # type: ignore[attr-defined]
    return bytes(proc.captured).decode(errors="replace")  # type: ignore[attr-defined]


def wait_http(url: str, timeout: float = 20, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def start_process(
    args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    merged = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        list(args), env=merged, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    # Drain the output as it comes: a child that logs more than a pipe holds would otherwise
    # block on its next write. `output(proc)` returns what it printed.
    captured = bytearray()
    assert proc.stdout is not None
    pipe = proc.stdout
    reader = threading.Thread(
        target=lambda: [captured.extend(chunk) for chunk in iter(lambda: pipe.read1(65536), b"")],
        daemon=True,
    )
    reader.start()
    proc.captured = captured  # type: ignore[attr-defined]
    proc.reader = reader  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


AIMOCK_BIN = Path(__file__).resolve().parent / "third_party" / "node_modules" / ".bin" / "llmock"


@contextlib.contextmanager
def start_aimock(fixtures: Path) -> Iterator[str]:
    """aimock (npm @copilotkit/aimock): a third-party mock of the OpenAI, Anthropic and Gemini
    APIs, run as its own Node process. Skips the test when it is not installed (scripts/test
    installs it), except under CI, where a missing upstream is a failure."""
    import pytest

    if not AIMOCK_BIN.exists():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"aimock is not installed at {AIMOCK_BIN}; run scripts/test")
        pytest.skip("aimock is not installed (npm ci --prefix tests/third_party)")
    port = free_port()
    with start_process(
        [
            str(AIMOCK_BIN),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-f",
            str(fixtures),
            "--log-level",
            "warn",
        ]
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc, timeout=30)
        yield f"http://127.0.0.1:{port}"


# -- small helpers for routing tests against the emulator ---------------------------------------


def dep(emu: EmulatorServer, model: str, **extra: Any) -> str:
    fields = {
        "provider": "openai",
        "model": model,
        "api_base": f"{emu.url}/v1",
        "api_key": EMULATOR_KEY,
        **extra,
    }
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}"


def chat(gw: GatewayServer, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "route me"}], **extra}
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=30)


def served(emu: EmulatorServer) -> list[str]:
    return [r["body"]["model"] for r in emu.requests() if r["path"].endswith("/chat/completions")]


@contextlib.contextmanager
def start_fakellm(folder: Path, rules: str) -> Iterator[str]:
    """fakellm (PyPI): a third-party OpenAI/Anthropic mock, as its own process, with `rules`
    as its config. Yields its base URL."""
    (folder / "fakellm.yaml").write_text(rules)
    port = free_port()
    with start_process(
        [str(VENV_BIN / "fakellm"), "serve", "--port", str(port), "--config", "fakellm.yaml"],
        cwd=folder,
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/_fakellm/stats", proc=proc, timeout=30)
        yield f"http://127.0.0.1:{port}"
