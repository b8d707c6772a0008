"""The writer's journal (usage/journal.py): records read back as they were written, segments
deleted once the writer has taken their records, a dead process's segments taken again and a
live one's left alone, and a cut line skipped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ai_gateway.security.audit import AuditRecord
from ai_gateway.usage.journal import Journal, decode, encode
from ai_gateway.usage.records import FeedbackRecord
from analytics_support import usage_record

T0 = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)


def test_each_kind_reads_back_equal() -> None:
    usage = usage_record("req-1", cost_usd=Decimal("0.000123456789"), created_at=T0)
    feedback = FeedbackRecord("req-1", T0, 0.75, "4", "good", ("a", "b"))
    audit = AuditRecord(actor="master", action="key.created", target="k1", details={"n": 1})
    for kind, record in (("usage", usage), ("feedback", feedback), ("audit", audit)):
        assert decode(encode(kind, record).rstrip(b"\n")) == (kind, record)  # type: ignore[arg-type]


def test_a_segment_goes_once_its_records_are_taken(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_records=3)
    for n in range(5):
        journal.append("usage", usage_record(f"req-{n}"))
    journal.append("feedback", FeedbackRecord("req-0", T0, 1.0, "up", None, ()))
    assert len(list(tmp_path.glob("*.jsonl"))) == 2  # 3 records, then 3
    journal.taken("usage", 3)
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # the first is done
    journal.taken("usage", 2)
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # the feedback record is not taken yet
    journal.taken("feedback", 1)
    assert list(tmp_path.glob("*.jsonl")) == []
    journal.append("usage", usage_record("req-9"))  # a new segment starts
    journal.close()
    assert [r.request_id for _, r in Journal(tmp_path).recover()] == ["req-9"]


WRITE_AND_EXIT = textwrap.dedent(
    """
    import os, sys, time
    sys.path[:0] = {paths!r}
    from ai_gateway.usage.journal import Journal
    from analytics_support import usage_record
    journal = Journal(__import__("pathlib").Path({folder!r}))
    for n in range(3):
        journal.append("usage", usage_record(f"req-{{n}}"))
    print("written", flush=True)
    if {stay!r}:
        time.sleep(60)
    os._exit(0)  # no close: as if killed
    """
)


def run_writer(folder: Path, *, stay: bool) -> subprocess.Popen[str]:
    paths = [str(Path(__file__).parents[1]), *sys.path]
    code = WRITE_AND_EXIT.format(paths=paths, folder=str(folder), stay=stay)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    return proc


def test_a_dead_process_s_records_are_taken_again_and_a_live_one_s_left(tmp_path: Path) -> None:
    run_writer(tmp_path, stay=False).communicate(timeout=30)
    live = run_writer(tmp_path, stay=True)
    try:
        recovered = [r.request_id for _, r in Journal(tmp_path).recover()]
        assert recovered == ["req-0", "req-1", "req-2"]  # the dead one's, once
        assert len(list(tmp_path.glob("*.jsonl"))) == 1  # the live one's stays
        assert list(Journal(tmp_path).recover()) == []
    finally:
        live.kill()
        live.communicate(timeout=30)
    assert [r.request_id for _, r in Journal(tmp_path).recover()] == ["req-0", "req-1", "req-2"]
    assert list(tmp_path.glob("*.jsonl")) == []


def test_a_cut_line_is_skipped_and_counted(tmp_path: Path) -> None:
    whole = encode("usage", usage_record("req-1"))
    cut = encode("usage", usage_record("req-2"))[:40]
    (tmp_path / "dead-000001.jsonl").write_bytes(whole + cut)
    journal = Journal(tmp_path)
    assert [r.request_id for _, r in journal.recover()] == ["req-1"]
    assert journal.unreadable == 1
