"""What scripts/cluster is made of: its run directory's state file, processes started in their
own session and stopped by it, readiness probes, and deploy/nginx.conf filled in.

Standard library only: it runs before anything else is known to work.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATE_FILE = "cluster.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class ClusterError(Exception):
    """A reason the cluster cannot start (or stop), for the operator to act on."""


# -- processes -------------------------------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None when
    there is no such process: with the pid, it names one process even after pids wrap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; it only waits for its parent
        return None
    return int(fields[19])


@dataclass
class Proc:
    """A process this script started, in its own session (its pid is its process group)."""

    name: str
    pid: int
    start: int  # _start_ticks(pid) when it was started
    log: str
    port: int | None = None
    url: str | None = None
    # How it was started, to start it again (`restart`): its command line, its working
    # directory, and the variables set for it on top of the caller's environment (never a
    # secret: Redis's and PostgreSQL's URLs are given again).
    argv: list[str] = field(default_factory=list)
    cwd: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = Path(self.log).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    base_env: Mapping[str, str],
    env: Mapping[str, str],
    log: Path,
    cwd: Path,
    port: int | None = None,
) -> Proc:
    """Start `argv` in a new session with `base_env` and `env` (which the state keeps), its
    output appended to `log`; it outlives this script."""
    with log.open("ab") as out:
        popen = subprocess.Popen(  # noqa: S603 (our own argv)
            list(argv),
            env={**base_env, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Reaped by init once this script exits; until then `alive()` treats a zombie as gone.
    popen.returncode = 0  # no ResourceWarning about a child still running: that is the point
    start = _start_ticks(popen.pid)
    url = f"http://127.0.0.1:{port}" if port is not None else None
    return Proc(
        name,
        popen.pid,
        start if start is not None else -1,
        str(log),
        port,
        url,
        argv=list(argv),
        cwd=str(cwd),
        env=dict(env),
    )


def stop(procs: Sequence[Proc], timeout: float) -> list[str]:
    """SIGTERM to each process group, SIGKILL to what is left after `timeout` seconds; the
    names of those that had to be killed."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.alive() for p in procs):
        time.sleep(0.1)
    killed = [p.name for p in procs if p.alive()]
    for proc in procs:
        proc.signal(signal.SIGKILL)
    return killed


# -- probes ----------------------------------------------------------------------------------


def http_status(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET to `url`; (0, reason) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only)
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc)


def wait_until(what: str, check: Callable[[], bool], procs: Sequence[Proc], timeout: float) -> None:
    """Poll `check` until it is true; raise (with the logs of `procs`) when one of them exits
    or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        dead = [p for p in procs if not p.alive()]
        if dead:
            raise ClusterError(
                f"{dead[0].name} exited while waiting for {what}; its log ({dead[0].log}):\n"
                + dead[0].log_tail()
            )
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log}):\n{p.log_tail(10)}" for p in procs)
            raise ClusterError(f"{what}: not within {timeout:g}s\n{tails}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def reachable(url: str, default_port: int, name: str, variable: str) -> None:
    """Raise unless a TCP connection to `url`'s host and port opens (never prints `url`: it
    may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme.startswith("unix"):
        return
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        raise ClusterError(
            f"{name} is not reachable at {host}:{port} ({variable}): {exc.strerror or exc}; "
            f"start it, or point {variable} at one"
        ) from None


def redacted(url: str) -> str:
    """`url` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# -- nginx -----------------------------------------------------------------------------------


def render(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `${NAME}` replaced; raise if one has no value or a value is not
    used (a renamed placeholder would otherwise pass unnoticed)."""
    names = set(_PLACEHOLDER.findall(template))
    missing = sorted(names - set(values))
    unused = sorted(set(values) - names)
    if missing or unused:
        raise ClusterError(
            f"nginx template: no value for {missing or 'none'}; unused values {unused or 'none'}"
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def nginx_argv(nginx: str, prefix: Path) -> list[str]:
    """nginx run from `prefix` (its config, logs and temporary files all inside it); -e: the
    error log before the config is read, which would otherwise be the package's (not writable
    by a normal user)."""
    return [nginx, "-p", f"{prefix}/", "-c", "nginx.conf", "-e", str(prefix / "error.log")]


# -- state -----------------------------------------------------------------------------------


@dataclass
class State:
    url: str
    port: int
    dir: str
    nginx: Proc | None
    instances: list[Proc]
    emulator: Proc | None
    redis_url: str  # without the password
    database_url: str
    redis_prefix: str
    access_log: str
    qdrant: Proc | None = None  # the Qdrant emulator, unless a server was given
    qdrant_url: str = ""  # without the password

    def procs(self) -> list[Proc]:
        """In the order they stop: the balancer first, the upstreams last."""
        procs = (self.nginx, *self.instances, self.emulator, self.qdrant)
        return [p for p in procs if p is not None]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> State:
        def proc(value: Any) -> Proc | None:
            return Proc(**value) if value else None

        return cls(
            **{
                **data,
                "nginx": proc(data.get("nginx")),
                "emulator": proc(data.get("emulator")),
                "qdrant": proc(data.get("qdrant")),
                "instances": [Proc(**p) for p in data.get("instances", [])],
            }
        )


def save(run_dir: Path, state: State) -> None:
    tmp = run_dir / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    tmp.replace(run_dir / STATE_FILE)


def load(run_dir: Path) -> State | None:
    try:
        return State.from_json(json.loads((run_dir / STATE_FILE).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ClusterError(
            f"{run_dir / STATE_FILE} is not a state file of this script: {exc}"
        ) from None
