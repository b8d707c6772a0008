"""Operator code for the hook tests: Python hook functions as an operator would write them
against the documented contract (ai_gateway.hooks.api), named `hook_functions:<name>` in the
tests' configs. Not the gateway's own code."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ai_gateway.hooks.api import Continue, Drop, HookContext, Reject, Respond

FORBIDDEN = "pineapple"
# What the on_record hooks received, by test (each test passes a fresh list via `RECORDS`).
RECORDS: list[Any] = []


def _prompt(body: dict[str, Any]) -> str:
    return " ".join(str(m.get("content")) for m in body.get("messages") or ())


async def reject_word(ctx: HookContext) -> Reject | None:
    if FORBIDDEN in _prompt(ctx.body).lower():
        return Reject(f"Prompts about {FORBIDDEN} are not allowed here.", code="forbidden_word")
    return None


def reject_word_sync(ctx: HookContext) -> Reject | None:  # run in a worker thread
    if FORBIDDEN in _prompt(ctx.body).lower():
        return Reject("No fruit.", status=403, code="no_fruit")
    return None


def shout_inline(ctx: HookContext) -> Continue:  # `inline: true`: cheap, on the event loop
    messages = [{**m, "content": str(m["content"]).upper()} for m in ctx.body["messages"]]
    return Continue(body={**ctx.body, "messages": messages})


async def answer_directly(ctx: HookContext) -> Respond:
    return Respond(
        {
            "id": "chatcmpl-hook",
            "object": "chat.completion",
            "created": 1,
            "model": ctx.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "answered by a hook"},
                    "finish_reason": "stop",
                }
            ],
        }
    )


async def sign_answer(ctx: HookContext) -> Continue:
    choices = [
        {**c, "message": {**c["message"], "content": c["message"]["content"] + " [checked]"}}
        for c in ctx.body["choices"]
    ]
    return Continue(body={**ctx.body, "choices": choices})


async def upper_chunks(ctx: HookContext) -> Continue | Drop | None:
    choices = ctx.body.get("choices") or []
    if not choices:
        return None
    delta = choices[0].get("delta") or {}
    content = delta.get("content")
    if content == "":
        return Drop()
    if isinstance(content, str):
        new = {**choices[0], "delta": {**delta, "content": content.upper()}}
        return Continue(body={**ctx.body, "choices": [new, *choices[1:]]})
    return None


async def raises(ctx: HookContext) -> None:
    raise RuntimeError("the operator's bug")


async def sleeps(ctx: HookContext) -> None:
    await asyncio.sleep(30)


def blocks_thread(ctx: HookContext) -> None:
    time.sleep(2)


async def malformed(ctx: HookContext) -> object:
    return {"action": "continue"}  # a dict, not a result


async def wrong_model(ctx: HookContext) -> Continue:
    return Continue(body={**ctx.body, "model": "other"})


async def keep_record(ctx: HookContext) -> None:
    RECORDS.append(ctx.record)


async def noop(ctx: HookContext) -> None:
    return None


def noop_sync(ctx: HookContext) -> None:
    return None
