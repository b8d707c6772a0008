"""A chain of stages. A stage is one "around" unit: it gets the exchange and `next` (the rest of
the chain), does its work before calling `next` and after it, and returns the outcome (see
pipeline/exchange.py). For a stream its after-work wraps the chunk iterator, with its clean-up
in `finally`. A stage may call `next` more than once (a fan-out, once per model) or not at all
(a refusal, or the last stage, which produces the answer).

A stage may also say, per exchange, that it has nothing to do (`skips`, below): the chain then
calls the next stage directly, and an idle stage costs one check, not a coroutine. A link adds
no coroutine of its own: it returns the stage's, which its caller awaits.

The chains themselves, the order of the stages, are declared in pipeline/chains.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from ai_gateway.pipeline.exchange import Exchange, Outcome

Next = Callable[[Exchange], Awaitable[Outcome]]


class Stage(Protocol):
    async def __call__(self, exchange: Exchange, next: Next) -> Outcome: ...


@runtime_checkable
class Skipping(Stage, Protocol):
    """A stage that can tell, before it runs, that it would only pass the exchange on."""

    def skips(self, exchange: Exchange) -> bool: ...


async def _end(exchange: Exchange) -> Outcome:
    raise RuntimeError("the last stage of a chain called next: it must produce the answer")


def _link(stage: Stage, rest: Next) -> Next:
    if not isinstance(stage, Skipping):

        def run(exchange: Exchange) -> Awaitable[Outcome]:
            return stage(exchange, rest)

        return run

    skips = stage.skips

    def run_unless_skipped(exchange: Exchange) -> Awaitable[Outcome]:
        return rest(exchange) if skips(exchange) else stage(exchange, rest)

    return run_unless_skipped


class Chain:
    """Stages run in the order given, the first outermost. Calling the chain runs it on an
    exchange."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        run: Next = _end
        for stage in reversed(self.stages):
            run = _link(stage, run)
        self._run = run

    def __call__(self, exchange: Exchange) -> Awaitable[Outcome]:
        return self._run(exchange)
