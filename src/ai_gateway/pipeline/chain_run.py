"""Running a chain (docs/chains.md): each step a chat request with the step's template as its
`prompt`, through the whole chat chain (recorded, admitted, guarded, cached like any chat) with
its own exchange: the request `<request id>.<step index>`, so each step is its own usage record.

Steps run one after another; a step's output (its answer text, or the JSON it holds, checked
against its schema) is `steps.<name>` for the later steps. The whole run is bounded by a
deadline: past it, the step running is stopped (its record has the chain's error) and the run
ends with `ChainTimeoutError` (504). A step's own error keeps its status; its message says
which step.

`complete()` runs every step and answers the run's JSON; `events()` runs the earlier steps, then
streams the last one: `{"type": "step", ...}` for each finished earlier step (when asked), then
`{"type": "delta", "text"}` pieces of the last answer, then one `{"type": "result", ...}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from ai_gateway.chains.definition import STEPS, CompiledChain, Step
from ai_gateway.chains.errors import ChainRequestError, ChainStepOutputError, ChainTimeoutError
from ai_gateway.errors import GatewayError
from ai_gateway.pipeline.chain import Chain
from ai_gateway.pipeline.exchange import Chunks, Exchange, chat_exchange
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits

T = TypeVar("T")
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    model: str
    output: Any
    usage: dict[str, int]
    request_id: str

    def view(self) -> JSONObject:
        return {
            "name": self.name,
            "model": self.model,
            "output": self.output,
            "usage": self.usage,
            "request_id": self.request_id,
        }


class ChainRun:
    """One run of `chain` for the request `info`, ending by `timeout_s` from now."""

    def __init__(
        self,
        chat: Chain,
        limits: RequestLimits,
        chain: CompiledChain,
        variables: dict[str, Any],
        info: RequestInfo,
        timeout_s: float,
        max_steps: int,
    ) -> None:
        if len(chain.steps) > max_steps:  # the bound was lowered after the chain was stored
            raise ChainRequestError(
                f"{chain.name} has {len(chain.steps)} steps; this gateway now allows at most "
                f"{max_steps} (chains.max_steps).",
                code="chain_too_many_steps",
            )
        chain.check_inputs(variables)
        self.chain = chain
        self._chat = chat
        self._limits = limits
        self._info = info
        self._inputs = variables
        self._timeout_s = timeout_s
        self._deadline = asyncio.get_running_loop().time() + timeout_s
        self.results: list[StepResult] = []

    # -- the two ways to run -------------------------------------------------------------------

    async def complete(self, include_intermediate: bool) -> JSONObject:
        for step in self.chain.steps:
            await self.step(step)
        return self.result(include_intermediate)

    async def events(self, include_intermediate: bool) -> AsyncGenerator[JSONObject, None]:
        *earlier, last = self.chain.steps
        for step in earlier:
            done = await self.step(step)
            if include_intermediate:
                yield {"type": "step", **done.view()}
        exchange = self._exchange(last, stream=True)
        opened = self._call(last, _open(self._chat, exchange))
        chunks, first = await self._bounded(last, exchange, opened)
        parts: list[str] = []
        usage: Any = None
        try:
            chunk = first
            while chunk is not None:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if choice.get("index", 0) == 0 and isinstance(text, str) and text:
                        parts.append(text)
                        yield {"type": "delta", "text": text}
                chunk = await self._bounded(last, exchange, self._call(last, anext(chunks, None)))
        finally:
            await chunks.aclose()
        self._finish(last, exchange, "".join(parts), usage)
        yield {"type": "result", **self.result(include_intermediate)}

    # -- steps ---------------------------------------------------------------------------------

    async def step(self, step: Step) -> StepResult:
        exchange = self._exchange(step, stream=False)
        answer = await self._bounded(step, exchange, self._call(step, self._chat(exchange)))
        assert isinstance(answer, dict)
        choices = answer.get("choices") or [{}]
        message = (choices[0] if isinstance(choices[0], dict) else {}).get("message") or {}
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        return self._finish(step, exchange, text, answer.get("usage"))

    async def _call(self, step: Step, work: Awaitable[T]) -> T:
        """`work`, its error saying which step failed."""
        try:
            return await work
        except GatewayError as exc:
            raise self._about(step, exc) from None

    def _exchange(self, step: Step, *, stream: bool) -> Exchange:
        namespace = {**self._inputs, STEPS: {r.name: r.output for r in self.results}}
        variables = step.variables(namespace, partial(self._bad_variable, step))
        ref = step.spec.prompt
        prompt: JSONObject = {"id": ref.id, "variables": variables}
        if ref.version is not None:
            prompt["version"] = ref.version
        if ref.label is not None:
            prompt["label"] = ref.label
        body: JSONObject = {"messages": [], "prompt": prompt, "stream": stream}
        if step.spec.model is not None:
            body["model"] = step.spec.model
        if stream:
            body["stream_options"] = {"include_usage": True}
        info = self._info
        step_info = RequestInfo(
            request_id=f"{info.request_id}.{step.index}",
            principal=info.principal,
            client_ip=info.client_ip,
            client_request_id=info.client_request_id,
        )
        try:
            return chat_exchange(body, step_info, self._limits)
        except GatewayError as exc:
            raise self._about(step, exc) from None

    def _finish(self, step: Step, exchange: Exchange, text: str, usage: Any) -> StepResult:
        counted = {k: _int(usage.get(k) if isinstance(usage, dict) else None) for k in USAGE_KEYS}
        output = step.output(text, lambda problem: self._bad_output(step, problem))
        result = StepResult(step.name, exchange.model, output, counted, exchange.info.request_id)
        self.results.append(result)
        self._adopt(exchange.info)
        return result

    def _adopt(self, step: RequestInfo) -> None:
        """The run's facts (metrics, logs, headers) are its last step's, its cost the sum."""
        info = self._info
        info.model, info.provider, info.deployment = step.model, step.provider, step.deployment
        info.trace = step.trace
        info.total_tokens += step.total_tokens
        if step.cost_usd is not None:
            info.cost_usd = step.cost_usd + (info.cost_usd or 0)

    def result(self, include_intermediate: bool) -> JSONObject:
        version = self.chain.version
        view: JSONObject = {
            "id": f"chainrun-{self._info.request_id}",
            "object": "chain.run",
            "chain": version.prompt_id,
            "version": version.version,
            "output": self.results[-1].output if self.results else None,
        }
        if include_intermediate:
            view["steps"] = [r.view() for r in self.results]
        view["usage"] = {k: sum(r.usage[k] for r in self.results) for k in USAGE_KEYS}
        return view

    # -- bounds and errors ---------------------------------------------------------------------

    async def _bounded(self, step: Step, exchange: Exchange, work: Awaitable[T]) -> T:
        """`work`, stopped at the run's deadline: the step's exchange says so first (its record
        then has the chain's error, not a client that left), then the step is cancelled."""
        task = asyncio.current_task()
        assert task is not None
        error = ChainTimeoutError(
            f"{self.chain.name} ran past its time bound of {self._timeout_s:g} s (timeout_s) "
            f"during step {step.name!r} ({step.index + 1} of {len(self.chain.steps)}); it was "
            f"stopped. The steps that ran are recorded (request ids "
            + ", ".join(f"{self._info.request_id}.{i}" for i in range(step.index + 1))
            + ")."
        )

        def stop() -> None:
            exchange.stopped = error
            task.cancel()

        timer = asyncio.get_running_loop().call_at(self._deadline, stop)
        try:
            return await work
        except asyncio.CancelledError:
            if exchange.stopped is not error:
                raise  # cancelled from outside: the client left
            task.uncancel()
            raise error from None
        finally:
            timer.cancel()

    def _where(self, step: Step) -> str:
        count = len(self.chain.steps)
        return f"{self.chain.name}, step {step.name!r} ({step.index + 1} of {count})"

    def _about(self, step: Step, exc: GatewayError) -> GatewayError:
        exc.message = f"{self._where(step)}: {exc.message}"
        exc.args = (exc.message,)
        return exc

    def _bad_variable(self, step: Step, name: str, problem: str) -> ChainRequestError:
        return ChainRequestError(
            f"{self._where(step)}, variable {name!r}: {problem}.",
            param=f"steps[{step.index}].variables.{name}",
            code="chain_render_error",
        )

    def _bad_output(self, step: Step, problem: str) -> ChainStepOutputError:
        return ChainStepOutputError(f"{self._where(step)}: {problem}.")


async def _open(chat: Chain, exchange: Exchange) -> tuple[Chunks, JSONObject | None]:
    outcome = await chat(exchange)
    if isinstance(outcome, dict):
        raise TypeError("a streamed request's chain answered with JSON")
    return outcome, await anext(outcome, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
