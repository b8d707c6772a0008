"""The writer's journal: records survive a process that is killed before they reach the store.

The background writer (`usage/writer.py`) keeps records in memory until the store has taken them,
flushing every half second; a `kill -9`, an out-of-memory kill or a crash would lose what is
buffered, the usage rows of requests that were answered. So each record the writer accepts is
also appended to a journal file, one line and one `write()` per record: the kernel keeps the
bytes when the process dies (not when the machine loses power: there is no fsync per record).

- Files are segments, `<folder>/<token>-<n>.jsonl`, written by one process (its own token) and
  held under an exclusive `flock` while it lives. A segment is deleted once the writer has taken
  every record in it off its buffer (written, or dropped and counted).
- At start, a segment whose lock can be taken belongs to a process that is gone: its records
  are handed back to the writer (which journals them again, in its own segment) and the file is
  deleted. The store skips ids it already has, so a record written before the crash is not
  stored twice. Several workers starting at once cannot take the same orphan (the lock).
- A line that cannot be read (the tail of a file cut by a power loss) is skipped and counted.

Call every method on the event loop's thread.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson

from ai_gateway.observability.logging import get_logger
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

log = get_logger(__name__)

Kind = Literal["usage", "feedback", "audit"]
SEGMENT_RECORDS = 2000  # records per segment before a new one is started


@dataclass
class _Segment:
    path: Path
    fd: int
    appended: dict[str, int] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)

    def done(self) -> bool:
        return all(self.taken.get(kind, 0) >= count for kind, count in self.appended.items())

    def total(self) -> int:
        return sum(self.appended.values())


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def encode(kind: Kind, record: Any) -> bytes:
    return kind.encode() + b"\t" + orjson.dumps(record, default=_default) + b"\n"


def decode(line: bytes) -> tuple[Kind, Any]:
    """A journal line back into its record; ValueError (or TypeError) if it cannot be read."""
    name, _, payload = line.partition(b"\t")
    data = orjson.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if name == b"usage":
        for key in ("cost_usd", "saved_cost_usd"):
            if data.get(key) is not None:
                data[key] = Decimal(data[key])
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return "usage", UsageRecord(**_known(UsageRecord, data))
    if name == b"feedback":
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["tags"] = tuple(data.get("tags") or ())
        return "feedback", FeedbackRecord(**_known(FeedbackRecord, data))
    if name == b"audit":
        from ai_gateway.security.audit import AuditRecord  # the writer's optional sink

        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return "audit", AuditRecord(**_known(AuditRecord, data))
    raise ValueError(f"unknown record kind {name[:20]!r}")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


class Journal:
    def __init__(self, folder: Path, segment_records: int = SEGMENT_RECORDS) -> None:
        self._folder = folder
        self._segment_records = segment_records
        self._token = uuid.uuid4().hex[:12]
        self._number = 0
        self._segments: deque[_Segment] = deque()
        self.unreadable = 0  # lines of orphaned segments that could not be read

    # -- start: what a dead process left ------------------------------------------------------

    def recover(self) -> Iterator[tuple[Kind, Any]]:
        """The records of segments no live process holds, oldest file first; each file is
        deleted once its records have been taken (the caller journals them again before asking
        for the next file's)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        paths = sorted(self._folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # another worker took it
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                if not path.exists():
                    continue  # taken and deleted by another worker before our lock
                records = list(self._read(path))
                yield from records
                path.unlink(missing_ok=True)
                if records:
                    log.info("analytics_journal_recovered", records=len(records), file=path.name)
            finally:
                os.close(fd)

    def _read(self, path: Path) -> Iterator[tuple[Kind, Any]]:
        with path.open("rb") as file:
            for line in file:
                if not line.strip():
                    continue
                try:
                    yield decode(line.rstrip(b"\n"))
                except (ValueError, TypeError, KeyError) as exc:
                    self.unreadable += 1
                    log.warning(
                        "analytics_journal_line_unreadable",
                        file=path.name,
                        error_type=type(exc).__name__,
                    )

    # -- the hot path -------------------------------------------------------------------------

    def append(self, kind: Kind, record: Any) -> None:
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.total() >= self._segment_records:
            segment = self._open_segment()
        os.write(segment.fd, encode(kind, record))
        segment.appended[kind] = segment.appended.get(kind, 0) + 1

    def taken(self, kind: Kind, count: int) -> None:
        """The writer took the oldest `count` records of `kind` off its buffer."""
        for segment in self._segments:
            if count <= 0:
                break
            left = segment.appended.get(kind, 0) - segment.taken.get(kind, 0)
            step = min(left, count)
            if step:
                segment.taken[kind] = segment.taken.get(kind, 0) + step
                count -= step
        # Finished segments go, the one being written too: a new one starts with the next record.
        while self._segments and self._segments[0].done():
            self._close_segment(self._segments.popleft())

    def _open_segment(self) -> _Segment:
        self._folder.mkdir(parents=True, exist_ok=True)
        self._number += 1
        path = self._folder / f"{self._token}-{self._number:06d}.jsonl"
        temporary = path.with_suffix(".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # before the name makes it visible to `recover`
        os.rename(temporary, path)
        segment = _Segment(path, fd)
        self._segments.append(segment)
        return segment

    def _close_segment(self, segment: _Segment) -> None:
        segment.path.unlink(missing_ok=True)
        os.close(segment.fd)

    def close(self) -> None:
        """Release the segments; those with records still untaken stay for the next start."""
        while self._segments:
            segment = self._segments.popleft()
            if segment.done():
                segment.path.unlink(missing_ok=True)
            os.close(segment.fd)

    def pending_files(self) -> int:
        return len(self._segments)


__all__ = ["Journal", "decode", "encode"]
