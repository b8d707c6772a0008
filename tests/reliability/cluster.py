"""Placeholder until the cluster scenarios are written."""

from __future__ import annotations

from reliability.scenario import Ctx, Result, Unavailable


async def run_kill(ctx: Ctx) -> Result:
    raise Unavailable("not written yet")


async def run_sigterm(ctx: Ctx) -> Result:
    raise Unavailable("not written yet")
