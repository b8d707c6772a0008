"""Racing requests: the first success wins and the others are cancelled (upstream included).

Used by hedged requests (routing/router.py) and by fan-out's `first` mode (pipeline/fanout.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def first_success(
    tasks: Sequence[asyncio.Task[T]],
    discard: Callable[[T], Awaitable[None]] | None = None,
) -> tuple[int, T]:
    """The index and result of the first of `tasks` to succeed. The others are cancelled; a
    result that arrives together with the winner's is handed to `discard` (e.g. to close a
    stream nobody will read). When every task fails, the last failure is raised."""
    pending = set(tasks)
    try:
        error: BaseException | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winners = [t for t in tasks if t in done and not t.cancelled() and not t.exception()]
            for task in done:
                if task not in winners and not task.cancelled():
                    error = task.exception()
            if winners:
                for extra in winners[1:]:
                    if discard is not None:
                        await discard(extra.result())
                return tasks.index(winners[0]), winners[0].result()
        raise error if error is not None else asyncio.CancelledError()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
