"""Processes a scenario starts: the provider emulator, gateways, a Redis server of its own.

Each runs as its own process (so that its resident memory is its own and a kill -9 is real),
from this checkout's `src/`, with its output in a log file under the scenario's folder, and is
stopped by the scenario (`Stack.close`). Everything binds 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
EMULATOR_KEY = "sk-emulator-provider-key-0000"
MASTER_KEY = "sk-reliability-master-key-0000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: this checkout's code first, no ambient provider settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_GATEWAY_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_API"))
        and k not in ("REDIS_URL", "DATABASE_URL")
    }
    paths = [str(REPO / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, TimeoutError):
        return None


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    def start(self) -> Proc:
        self._out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.args, env=self.env or None, stdout=self._out, stderr=subprocess.STDOUT
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def rss_kib(self) -> int:
        """Resident memory (VmRSS) from /proc, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"{self.name}: no VmRSS")

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        assert self.popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.popen.wait(timeout)
        return None

    def stop(self, grace: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self.popen.kill()
                self.popen.wait(5)
        if self._out is not None:
            self._out.close()
            self._out = None

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_until(check: object, what: str, timeout: float = 30.0, proc: Proc | None = None) -> float:
    """Poll `check()` (a callable returning truthy) until it holds; returns the seconds taken."""
    assert callable(check)
    start = time.monotonic()
    while not check():
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited before {what}:\n{proc.tail()}")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.05)
    return time.monotonic() - start


@dataclass
class Service:
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack:
    """The processes of one scenario, stopped together (last started first)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._procs: list[Proc] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, self.workdir / f"{name}.log", child_env(env)).start()
        self._procs.append(proc)
        return proc

    def emulator(self, latency: float = 0.0, chunk_delay: float = 0.0) -> Service:
        """The provider emulator; not waited for: the gateways in front of it start meanwhile
        (`ready` waits for both)."""
        port = free_port()
        args = [sys.executable, "-m", "ai_gateway", "emulate", "--port", str(port)]
        args += ["--latency", str(latency), "--chunk-delay", str(chunk_delay)]
        return Service(self.start("emulator", args), port)

    def gateway(
        self,
        name: str,
        config: str,
        env: dict[str, str] | None = None,
        port: int = 0,
        wait: bool = True,
    ) -> Service:
        """A gateway process; with `wait=False` the caller waits (`ready`), so that several
        start at once."""
        path = self.workdir / f"{name}.yaml"
        path.write_text(config)
        port = port or free_port()
        args = [sys.executable, "-m", "ai_gateway", "serve", "--config", str(path)]
        args += ["--port", str(port)]
        extra = {"AI_GATEWAY_DATA_DIR": str(self.workdir / f"{name}-data"), **(env or {})}
        service = Service(self.start(name, args, extra), port)
        if wait:
            self.ready(service)
        return service

    def ready(self, *services: Service, timeout: float = 90.0) -> None:
        for service in services:
            path = "/_emulator/faults" if service.proc.name == "emulator" else "/health"
            url = f"{service.url}{path}"
            what = f"{service.proc.name} answering"
            wait_until(lambda u=url: http_status(u) == 200, what, timeout, service.proc)

    def redis(self, port: int = 0) -> Service:
        """A redis-server of the scenario's own (never the shared one on :6379)."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        port = port or free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir)]
        proc = self.start(f"redis-{port}", args)
        wait_until(lambda: _tcp_open(port), "redis listening", 15, proc)
        return Service(proc, port)

    def close(self) -> None:
        """SIGTERM to all at once (each flushes what it holds), then wait for each."""
        for proc in reversed(self._procs):
            proc.signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            proc.stop()
        self._procs.clear()


def _tcp_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def emulator_models(emulator_url: str) -> str:
    """The `models:` of a gateway in front of the emulator: `fast` (chat) and `embed`."""
    return f"""
models:
  - name: fast
    provider: openai
    model: gpt-4o-mini
    api_base: {emulator_url}/v1
    api_key: {EMULATOR_KEY}
  - name: embed
    provider: openai
    model: text-embedding-3-small
    api_base: {emulator_url}/v1
    api_key: {EMULATOR_KEY}
"""
