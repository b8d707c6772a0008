"""Start, pin, probe and stop the benchmark's server processes.

Every process is started in its own session (process group) and stopped by that group's id
(SIGTERM, then SIGKILL after a grace period), so nothing outlives the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class StartError(RuntimeError):
    """A server did not become ready; the message holds the tail of its log."""


@dataclass
class Server:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(argv: Sequence[str], cpus: set[int] | None) -> list[str]:
    """``argv`` prefixed with ``taskset`` for ``cpus`` (unchanged when no pinning or no taskset)."""
    if not cpus or shutil.which("taskset") is None:
        return list(argv)
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus)), *argv]


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields after the command name) for every process in /proc."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            yield int(entry.name), stat.rsplit(")", 1)[1].split()


def _group_members(pgid: int) -> list[int]:
    return [pid for pid, fields in _proc_stats() if int(fields[2]) == pgid]


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for child, fields in _proc_stats():
        parents.setdefault(int(fields[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def set_affinity(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` and of its descendants to ``cpus`` (no-op for None)."""
    if not cpus:
        return
    for proc in _descendants(pid):
        try:
            tids = [int(t.name) for t in Path(f"/proc/{proc}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            with suppress(OSError):  # the thread ended meanwhile
                os.sched_setaffinity(tid, cpus)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(server: Server, path: str, timeout: float) -> None:
    """Wait until ``GET path`` answers 200; raise StartError if it exits or times out."""
    deadline = time.monotonic() + timeout
    url = server.base_url + path
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise StartError(
                f"{server.name} exited with code {server.popen.returncode}:\n{server.log_tail()}"
            )
        if http_ok(url):
            return
        time.sleep(0.1)
    raise StartError(f"{server.name} not ready at {url} after {timeout:.0f}s:\n{server.log_tail()}")


def stop(server: Server, grace: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it is still there."""
    if server.popen.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(server.popen.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            server.popen.wait(timeout=grace)
    if server.popen.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(server.popen.pid, signal.SIGKILL)
        server.popen.wait(timeout=grace)
    for pid in _group_members(server.popen.pid):  # children that outlived their parent
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def running(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    ready_path: str = "/health",
    ready_timeout: float = 30.0,
    cpus: set[int] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run a server for the duration of the block; it is always stopped on exit."""
    log_path = log_dir / f"{name}.log"
    log: IO[bytes] = log_path.open("wb")
    popen = subprocess.Popen(
        pinned(argv, cpus),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    server = Server(name=name, port=port, popen=popen, log_path=log_path)
    try:
        wait_ready(server, ready_path, ready_timeout)
        yield server
    finally:
        stop(server)
        log.close()
