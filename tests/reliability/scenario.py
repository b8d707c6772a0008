"""What every scenario shares: its run context, its result, and the names of the scenarios."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Unavailable(Exception):
    """Something the scenario needs (Redis, PostgreSQL, nginx) is not on this machine."""


@dataclass(frozen=True)
class Ctx:
    short: bool
    workdir: Path

    def pick(self, short: float, full: float) -> float:
        return short if self.short else full


@dataclass
class Result:
    name: str
    passed: bool = True
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.passed = False
            self.failures.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "figures": self.figures,
            "failures": self.failures,
            "notes": self.notes,
        }


def in_ci() -> bool:
    return os.environ.get("CI") == "true"
