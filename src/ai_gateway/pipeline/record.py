"""The recording stage, outermost in every chain: one usage record per request, written when it
ends, with the status the client got.

- A JSON answer: 200. An error raised by any stage inside (a limit, a content rule on the
  prompt or on the answer, routing, the upstream): its status. A client that left: 499. An
  unexpected exception: 500 (what the app's error handler answers).
- A stream: when it ends. An error before its first chunk came out is the client's HTTP status
  (see pipeline/exchange.py); after it, the client has a 200 and an error event: 200 with the
  error's type. A stream closed before its end (the client left): 200, `client_disconnected`.
- A fan-out records each branch as its own request (`Fanout` runs this stage around each); the
  request itself is recorded only if it ended before it branched (refused at admission).

Tokens and cost are what the provider call measured (the exchange's `usage`; an answer a content
rule blocked was still generated, and is recorded with its cost).
"""

from __future__ import annotations

import asyncio

from ai_gateway.errors import GatewayError, InternalError
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.exchange import Chunks, Exchange, Outcome
from ai_gateway.usage.recorder import UsageRecorder

CLIENT_CLOSED = 499


class Record:
    def __init__(self, recorder: UsageRecorder) -> None:
        self._recorder = recorder

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        try:
            outcome = await next(exchange)
        except GatewayError as exc:
            self._write(exchange, stream=exchange.stream, error=exc)
            raise
        except asyncio.CancelledError:
            if exchange.stopped is not None:  # the gateway stopped it, the record says why
                self._write(exchange, stream=exchange.stream, error=exchange.stopped)
            else:
                self._write(exchange, stream=exchange.stream, status=CLIENT_CLOSED)
            raise
        except Exception:
            self._write(exchange, stream=exchange.stream, error=InternalError("unexpected"))
            raise
        if isinstance(outcome, dict):
            self._write(exchange, stream=False)
            return outcome
        return self._watch(exchange, outcome)

    async def _watch(self, exchange: Exchange, chunks: Chunks) -> Chunks:
        """`chunks`, recorded when they end."""
        started = completed = False
        failure: GatewayError | None = None
        try:
            async for chunk in chunks:
                started = True
                yield chunk
            completed = True
        except GatewayError as exc:
            failure = exc
            raise
        finally:
            await chunks.aclose()  # its stages' clean-up first: what the answer used
            if not completed and failure is None:
                failure = exchange.stopped  # None: the client left
            if not started:  # the client gets an HTTP error, or nothing (it left)
                status = failure.status if failure is not None else CLIENT_CLOSED
                self._write(exchange, stream=True, status=status, error=failure)
            else:
                self._write(exchange, stream=True, status=200, error=failure, cut=not completed)

    def _write(
        self,
        exchange: Exchange,
        *,
        stream: bool,
        status: int | None = None,
        error: GatewayError | None = None,
        cut: bool = False,
    ) -> None:
        if exchange.branches is not None:
            return  # a fan-out: its branches are the records
        if status == CLIENT_CLOSED or (cut and error is None):
            error_type: str | None = "client_disconnected"
        else:
            error_type = None
        self._recorder.record(
            exchange.info,
            exchange.kind.value,
            exchange.model,
            stream=stream,
            usage=exchange.usage,
            error=error,
            status=status,
            error_type=error_type,
            ttft_s=exchange.ttft_s,
            estimated=exchange.usage_estimated,
            cache_status=exchange.cache_status,
            saved_tokens=exchange.saved_tokens,
            saved_cost_usd=exchange.saved_cost_usd,
        )
