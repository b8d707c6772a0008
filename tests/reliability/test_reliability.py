"""The reliability suite's short form (CI): each scenario at its short durations, and the soak
(60 s) in the background meanwhile, so that the whole module takes about as long as the other
scenarios together. The full form is `scripts/reliability` (docs/reliability.md).

A scenario that needs what this machine lacks (Redis, PostgreSQL, nginx) skips, except when
CI=true, where that fails.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from reliability.run import SCENARIOS, render, run_one
from reliability.scenario import Ctx, Result, in_ci

pytestmark = pytest.mark.integration

FOREGROUND = [name for name in SCENARIOS if name != "soak"]


def verdict(result: Result) -> None:
    if result.skipped:
        if in_ci():
            pytest.fail(f"{result.name} cannot run here (CI=true): {result.skipped}")
        pytest.skip(result.skipped)
    assert result.passed, render(result)


class Background:
    def __init__(self, name: str, workdir: Path) -> None:
        self.result: Result | None = None
        ctx = Ctx(short=True, workdir=workdir)
        self._thread = threading.Thread(target=self._run, args=(name, ctx), daemon=True)
        self._thread.start()

    def _run(self, name: str, ctx: Ctx) -> None:
        self.result = asyncio.run(run_one(name, ctx))

    def join(self, timeout: float) -> Result:
        self._thread.join(timeout)
        assert self.result is not None, "the soak did not finish in time"
        return self.result


@pytest.fixture(scope="module", autouse=True)
def soak(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Background | None:
    """Starts the soak before the first test of this module, when the soak's test is selected."""
    wanted = any(item.name == "test_soak" for item in request.session.items)
    return Background("soak", tmp_path_factory.mktemp("soak")) if wanted else None


@pytest.mark.parametrize("name", FOREGROUND)
def test_scenario(name: str, tmp_path: Path) -> None:
    verdict(asyncio.run(run_one(name, Ctx(short=True, workdir=tmp_path))))


def test_soak(soak: Background | None) -> None:
    assert soak is not None
    verdict(soak.join(timeout=300))
