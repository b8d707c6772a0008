"""The hooks stage with real operator functions (tests/hook_functions.py): a pre_request hook
changes, refuses or answers the request; post_response changes the answer; on_chunk changes or
drops chunks; a hook that raises, times out or returns something malformed follows its `fail`
policy, is counted and logged by name; with no hooks the request passes through untouched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from pydantic import ValidationError

import hook_functions
from ai_gateway.errors import GatewayError
from ai_gateway.hooks.config import HookConfig
from ai_gateway.hooks.functions import HttpClient, LoadError, build_function
from ai_gateway.hooks.records import RecordHooks
from ai_gateway.hooks.runner import Hook, HookMetrics, HookSet
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chain import Chain, Next
from ai_gateway.pipeline.exchange import Exchange, Outcome, chat_exchange
from ai_gateway.pipeline.hooks import Hooks
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits
from ai_gateway.usage.records import UsageRecord


class Upstream:
    """The last stage: echoes the prompt it was sent, as a JSON answer or two chunks."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        self.seen.append(exchange.request.body)
        text = exchange.chat.body["messages"][-1]["content"]
        if exchange.stream:
            return self._chunks(text)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        return {"object": "chat.completion", "choices": [{**choice, "finish_reason": "stop"}]}

    async def _chunks(self, text: str) -> AsyncGenerator[dict[str, Any], None]:
        for piece in ("", text, " end"):
            yield {"choices": [{"index": 0, "delta": {"content": piece}}]}


def hook(name: str, point: str, target: str, **extra: Any) -> HookConfig:
    return HookConfig.model_validate(
        {"name": name, "point": point, "python": f"hook_functions:{target}", **extra}
    )


def build(*configs: HookConfig, metrics: HookMetrics | None = None) -> tuple[Chain, Upstream]:
    hook_metrics = metrics or HookMetrics(Metrics())
    hooks = [Hook(c, build_function(c, HttpClient()), hook_metrics) for c in configs]
    upstream = Upstream()
    return Chain([Hooks(HookSet(hooks)), upstream]), upstream


def exchange(text: str = "hello", **extra: Any) -> Exchange:
    body = {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    return chat_exchange(body, RequestInfo(request_id="r1"), RequestLimits())


def run(chain: Chain, ex: Exchange) -> Any:
    return timed(chain, ex)[0]


def timed(chain: Chain, ex: Exchange) -> tuple[Any, float]:
    """The outcome, and how long the request took (measured on the loop: asyncio.run then
    waits for a worker thread a timed-out hook left running)."""

    async def go() -> tuple[Any, float]:
        started = time.monotonic()
        outcome = await chain(ex)
        if not isinstance(outcome, dict):
            outcome = [c async for c in outcome]
        return outcome, time.monotonic() - started

    return asyncio.run(go())


def text_of(outcome: Any) -> str:
    if isinstance(outcome, dict):
        return str(outcome["choices"][0]["message"]["content"])
    return "".join(c["choices"][0]["delta"].get("content", "") for c in outcome if c["choices"])


def test_without_hooks_the_request_passes_through_untouched() -> None:
    chain, upstream = build()
    ex = exchange()
    body = ex.request.body
    assert text_of(run(chain, ex)) == "hello"
    assert upstream.seen == [body]


@pytest.mark.parametrize("target", ["reject_word", "reject_word_sync"])
@pytest.mark.parametrize("stream", [False, True])
def test_pre_request_rejects_with_the_hook_s_error(target: str, stream: bool) -> None:
    chain, upstream = build(hook("words", "pre_request", target))
    with pytest.raises(GatewayError) as caught:
        run(chain, exchange("I like Pineapple", stream=stream))
    assert caught.value.status == (400 if target == "reject_word" else 403)
    assert caught.value.code == ("forbidden_word" if target == "reject_word" else "no_fruit")
    assert upstream.seen == []
    assert text_of(run(chain, exchange("I like apples", stream=stream))) == (
        "I like apples" if not stream else "I like apples end"
    )


def test_pre_request_rewrites_the_request_the_upstream_gets() -> None:
    chain, upstream = build(hook("shout", "pre_request", "shout_inline", inline=True))
    assert text_of(run(chain, exchange("quiet please"))) == "QUIET PLEASE"
    assert upstream.seen[0]["messages"][0]["content"] == "QUIET PLEASE"


@pytest.mark.parametrize("stream", [False, True])
def test_pre_request_answers_directly(stream: bool) -> None:
    chain, upstream = build(hook("direct", "pre_request", "answer_directly"))
    assert text_of(run(chain, exchange(stream=stream))) == "answered by a hook"
    assert upstream.seen == []


def test_post_response_and_on_chunk_change_the_answer() -> None:
    chain, _ = build(
        hook("sign", "post_response", "sign_answer"), hook("up", "on_chunk", "upper_chunks")
    )
    assert text_of(run(chain, exchange("ok"))) == "ok [checked]"
    chunks = run(chain, exchange("ok", stream=True))
    assert text_of(chunks) == "OK END"
    assert len(chunks) == 2  # the empty first chunk was dropped


def test_a_models_filter_limits_where_a_hook_runs() -> None:
    chain, _ = build(hook("words", "pre_request", "reject_word", models=["other"]))
    assert text_of(run(chain, exchange("pineapple"))) == "pineapple"


@pytest.mark.parametrize(
    ("target", "reason", "extra"),
    [
        ("raises", "error", {}),
        ("sleeps", "timeout", {"timeout_s": 0.05}),
        ("blocks_thread", "timeout", {"timeout_s": 0.05}),
        ("malformed", "malformed", {}),
        ("wrong_model", "malformed", {}),
    ],
)
def test_a_failing_hook_follows_its_policy_and_is_counted_and_logged(
    target: str, reason: str, extra: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Metrics()
    hook_metrics = HookMetrics(metrics)
    opened, upstream = build(hook("h-open", "pre_request", target, **extra), metrics=hook_metrics)
    outcome, seconds = timed(opened, exchange())
    assert text_of(outcome) == "hello"  # as if it had not run
    assert seconds < 1.5  # not the hook's 2 or 30 s
    assert upstream.seen[0]["messages"][0]["content"] == "hello"
    closed, upstream = build(
        hook("h-closed", "pre_request", target, fail="closed", **extra), metrics=hook_metrics
    )
    with pytest.raises(GatewayError) as caught:
        run(closed, exchange())
    assert (caught.value.status, caught.value.code) == (503, "hook_failed")
    assert "h-closed" in caught.value.message
    assert upstream.seen == []
    text = metrics.render().decode()
    for name, policy in (("h-open", "open"), ("h-closed", "closed")):
        labels = f'hook="{name}",point="pre_request",policy="{policy}",reason="{reason}"'
        assert f"ai_gateway_hook_failures_total{{{labels}}} 1.0" in text
        assert f'ai_gateway_hook_seconds_count{{hook="{name}",point="pre_request"}} 1.0' in text
    logged = capsys.readouterr()
    assert "hook_failed" in logged.out + logged.err
    assert "h-open" in logged.out + logged.err


def test_a_failing_on_chunk_hook_fails_open_per_chunk() -> None:
    chain, _ = build(hook("boom", "on_chunk", "raises"))
    assert text_of(run(chain, exchange("ok", stream=True))) == "ok end"


def test_on_record_hooks_get_the_record_off_the_hot_path() -> None:
    config = hook("keep", "on_record", "keep_record")
    metrics = HookMetrics(Metrics())
    hooks = RecordHooks([Hook(config, build_function(config, HttpClient()), metrics)], metrics)
    hook_functions.RECORDS.clear()

    class Inner:
        def __init__(self) -> None:
            self.records: list[UsageRecord] = []

        def submit_usage(self, record: UsageRecord) -> None:
            self.records.append(record)

    inner = Inner()
    hooks.attach(inner)

    async def go() -> None:
        await hooks.start()
        record = UsageRecord.__new__(UsageRecord)
        record.request_id, record.route, record.model, record.stream = "r9", "chat", "m", False
        record.user = record.team = record.key_id = None
        hooks.submit_usage(record)
        assert hook_functions.RECORDS == []  # not given to the hook during the request
        await hooks.aclose()

    asyncio.run(go())
    assert [r.request_id for r in hook_functions.RECORDS] == ["r9"]
    assert [r.request_id for r in inner.records] == ["r9"]


def test_config_names_exactly_one_kind_and_an_http_hook_a_secret() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        HookConfig.model_validate({"name": "x", "point": "pre_request"})
    with pytest.raises(ValidationError, match="secret"):
        HookConfig.model_validate({"name": "x", "point": "pre_request", "url": "http://h/"})
    with pytest.raises(ValidationError):
        HookConfig.model_validate({"name": "x", "point": "later", "python": "a:b"})


def test_a_python_hook_that_cannot_be_imported_is_a_load_error() -> None:
    with pytest.raises(LoadError, match="no_such_module"):
        build_function(
            hook("x", "pre_request", "noop").model_copy(update={"python": "no_such_module:f"}),
            HttpClient(),
        )
    with pytest.raises(LoadError, match="missing"):
        build_function(hook("x", "pre_request", "missing"), HttpClient())
