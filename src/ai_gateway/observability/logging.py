"""Structured logging with structlog: JSON lines in production, a readable console format in dev.

Secrets are redacted by construction: every line, the gateway's own and the standard library's
(uvicorn's among them), is scrubbed after exceptions have been turned into text. The configured
secrets (provider and deployment keys, the master key, the store URLs and their passwords) and
anything shaped like a credential are removed: in the JSON format from the rendered line itself
(so nested values and exception text are covered), in the console format from every value, at
any depth of dicts and lists.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import orjson
import structlog

from ai_gateway.redaction import scrub

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ai_gateway.settings import Config

_PLAIN = (int, float, bool, type(None))
_MIN_SECRET = 4  # shorter values would redact ordinary words
# Every credential shape `scrub` knows starts with one of these: a line without any of them
# (and without a configured secret) needs no regular expression.
_SHAPE_MARKERS = ("sk-", "AIza", "eyJ", "Bearer ")


def _usable(secrets: Iterable[str | None]) -> tuple[str, ...]:
    unique = {s for s in secrets if s and len(s) >= _MIN_SECRET}
    return tuple(sorted(unique, key=len, reverse=True))  # a secret containing another first


class SecretScrubber:
    """A structlog processor that scrubs every value of the event (strings at any depth of
    dicts and lists, anything else once turned into text). Used before the console renderer
    and for the standard library's records."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = _usable(secrets)

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
        for key, value in event_dict.items():
            if value.__class__ is str:
                event_dict[key] = scrub(value, self._secrets)
            elif not isinstance(value, _PLAIN):
                event_dict[key] = self._clean(value)
        return event_dict

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, self._secrets)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        return scrub(str(value), self._secrets)  # exceptions, URLs, anything else


class LineScrubber:
    """The last processor of the JSON format: scrubs the rendered line itself, so whatever was
    logged (nested values, exception text) is covered, at the cost of a few substring checks
    per line. Secrets are looked for as they are and as JSON escapes them."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        usable = _usable(secrets)
        escaped = {orjson.dumps(s).decode()[1:-1] for s in usable}
        self._secrets = _usable([*usable, *escaped])
        self._needles = (*self._secrets, *_SHAPE_MARKERS)

    def __call__(self, _: Any, __: str, line: str) -> str:
        for needle in self._needles:
            if needle in line:
                return scrub(line, self._secrets)
        return line


class IsoTimeStamper:
    """`timestamp` in ISO 8601 UTC with microseconds, like structlog's TimeStamper(fmt="iso",
    utc=True) at a fraction of its cost: the date and time of day are formatted once per
    second."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(
        self, _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict["timestamp"] = self.at(time.time())
        return event_dict

    def at(self, now: float) -> str:
        """The timestamp of `now` (seconds since the epoch)."""
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int((now - second) * 1e6):06d}Z"


def _secret_value(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def secrets_of(config: Config) -> tuple[str, ...]:
    """Every secret the configuration holds, for the scrubber: provider and deployment keys,
    the master key, the JWT secret, and the Redis / database URLs with their passwords."""
    gateway = config.gateway
    found: list[str | None] = [_secret_value(gateway.master_key)]
    found += [_secret_value(p.api_key) for p in config.providers.values()]
    for group in config.models:
        found += [_secret_value(d.api_key) for d in group.deployments]
    found.append(_secret_value(config.integrations.token))
    jwt = config.security.jwt
    if jwt is not None:
        found.append(_secret_value(jwt.secret))
    for url in (_secret_value(gateway.redis_url), _secret_value(gateway.database_url)):
        if url:
            found.append(url)
            with contextlib.suppress(ValueError):  # not a URL: the whole value is redacted
                found.append(urlsplit(url).password)
    return tuple(s for s in found if s)


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


# An event's fields, or a function that returns them (called once, when the line is rendered:
# the JSON fast path renders after the event loop's iteration, so the request pays nothing for
# building them).
Fields = dict[str, Any] | Callable[[], dict[str, Any]]
EventWriter = Callable[[str, Fields], None]

# The access log's events wait for the end of the event loop's iteration, then are rendered and
# written together; this many waiting lines are written at once.
MAX_PENDING_LINES = 256

Render = Callable[[Any], str]


class LineWriter:
    """Writes whole lines to `stream`, and is structlog's logger (`msg` and its aliases).

    `msg` writes at once. `deferred` (for the access log, one line per request, called on the
    event loop's thread) keeps an event until the loop's current iteration ends, then renders
    every event kept so far and writes them in one call: one system call for many requests
    instead of one each (like nginx's buffered access_log, but never later than the iteration's
    end), and the rendering runs as one tight loop rather than scattered through the requests'
    work. Order is kept: `msg` writes the kept lines first. `flush` also runs at interpreter exit.
    Thread-safe."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending: list[tuple[Render, Any]] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush waits on
        self._lock = threading.Lock()
        _WRITERS.add(self)

    def msg(self, message: str) -> None:
        with self._lock:
            self._pending.append((_as_is, message))
            self._write_pending()

    log = debug = info = warn = warning = msg
    err = error = critical = exception = fatal = failure = msg

    def deferred(self, render: Render, event: Any) -> None:
        """The line `render(event)`, rendered and written when the loop's iteration ends."""
        with self._lock:
            pending = self._pending
            pending.append((render, event))
            if len(pending) < MAX_PENDING_LINES:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop on this thread: nothing would end the batch
                    loop = None
                if loop is not None:
                    # Scheduled once per iteration; again if that loop closed before flushing.
                    if self._flush_on is not loop:
                        loop.call_soon(self.flush)
                        self._flush_on = loop
                    return
            self._write_pending()

    def flush(self) -> None:
        with self._lock:
            self._flush_on = None
            if self._pending:
                self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        lines = []
        for render, event in pending:
            try:
                lines.append(render(event))
            except Exception as exc:  # one bad event must not take the others (or logging) down
                lines.append(_unrenderable(exc))
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except ValueError:  # the stream is closed (a test's buffer, or at exit): nowhere to go
            pass


def _as_is(line: str) -> str:
    return line


def _unrenderable(exc: Exception) -> str:
    fields = {"event": "log_event_unrenderable", "level": "error"}
    return orjson.dumps({**fields, "error_type": type(exc).__name__}).decode()


_WRITERS: weakref.WeakSet[LineWriter] = weakref.WeakSet()


@atexit.register
def flush_all() -> None:
    """Write every kept line now (at exit, and for tests)."""
    for writer in list(_WRITERS):
        writer.flush()


class _FlushingHandler(logging.StreamHandler[TextIO]):
    """The standard library's lines (uvicorn's) go after the access log's lines kept before."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__(writer.stream)
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        self._writer.flush()
        super().emit(record)


class LineSink:
    """structlog's logger factory for `configure_logging`: loggers write lines to `stream`.

    With the JSON format it also offers `json_event`, the line the structlog pipeline would
    write for the event and its fields (level, timestamp, scrubbed), rendered without that
    pipeline's generic machinery and written in batches (see `LineWriter.deferred`): the access
    log writes one line per request, so it uses it (see `event_writer`). It carries the fields
    it is given, not structlog's context variables: the gateway binds none, and a request's
    facts are passed to the line explicitly."""

    def __init__(
        self, writer: LineWriter, *, json_scrubber: LineScrubber | None, min_level: int
    ) -> None:
        self.writer = writer
        self._scrubber = json_scrubber
        self._stamper = IsoTimeStamper()
        self.min_level = min_level

    def __call__(self, *_: Any) -> LineWriter:
        return self.writer

    def json_event(self, level: int) -> EventWriter | None:
        """A writer of `level` events in the JSON format; None for the console format. The event
        is timed now and rendered when the event loop's iteration ends (`LineWriter.deferred`)."""
        scrubber = self._scrubber
        if scrubber is None:
            return None
        name = logging.getLevelName(level).lower()
        stamp = self._stamper.at
        defer = self.writer.deferred

        def render(event: tuple[str, Fields, float]) -> str:
            label, given, now = event
            fields = given if isinstance(given, dict) else given()
            fields["event"] = label
            fields["level"] = name
            fields["timestamp"] = stamp(now)
            try:
                line = orjson.dumps(fields, default=str).decode()
            except orjson.JSONEncodeError:  # an integer past 64 bits: not orjson's, still JSON
                line = json.dumps(fields, default=str, ensure_ascii=False)
            return scrubber(None, "", line)

        def event(event: str, fields: Fields) -> None:
            defer(render, (event, fields, time.time()))

        return event


def event_writer(logger_name: str, level: int = logging.INFO) -> EventWriter | None:
    """Write `level` events for `logger_name`: the JSON fast path when `configure_logging` set
    the JSON format, else through structlog (console format, or logging not configured by us).
    None when the level is filtered out. Call it after logging is configured."""
    factory = structlog.get_config()["logger_factory"]
    if isinstance(factory, LineSink):
        if level < factory.min_level:
            return None
        fast = factory.json_event(level)
        if fast is not None:
            return fast
    log = get_logger(logger_name)
    method = getattr(log, logging.getLevelName(level).lower())

    def event(event: str, fields: Fields) -> None:
        method(event, **(fields if isinstance(fields, dict) else fields()))

    return event


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    *,
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """Called once by the CLI (never at import time). The standard library's loggers (uvicorn's
    among them) go through the same processors, so every line has one format.

    `secrets`: values to redact wherever they appear (see `secrets_of`). `stream`: where lines
    go (standard error). `cache_loggers=False` lets a test configure logging again later."""
    stream = stream if stream is not None else sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        IsoTimeStamper(),
        structlog.processors.format_exc_info,  # exception text is scrubbed like the rest
    ]
    rendering: list[Any]
    scrubber = None
    if fmt == "json":
        scrubber = LineScrubber(secrets)
        rendering = [structlog.processors.JSONRenderer(serializer=_dumps), scrubber]
    else:
        rendering = [SecretScrubber(secrets), structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    writer = LineWriter(stream)
    handler = _FlushingHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The gateway writes its own access line (event "request"); uvicorn's would repeat it. A
    # worker process (--workers > 1) configures logging after uvicorn has, so say it here too.
    logging.getLogger("uvicorn.access").propagate = False
    min_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=LineSink(writer, json_scrubber=scrubber, min_level=min_level),
        cache_logger_on_first_use=cache_loggers,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
