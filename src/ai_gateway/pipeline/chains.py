"""The order of the stages: the one place it is written. Every model endpoint (chat completions,
streamed or not, fanned out or not, and embeddings) runs `MODEL_STAGES`, outermost first:

    record   one usage record per request, with the status the client got    pipeline/record.py
    prompt   a prompt template: the request it renders replaces the request   pipeline/prompt.py
    admit    allowed models, rate limits and budgets; settled when it ends    pipeline/admit.py
    fanout   several models: the rest of the chain once per model             pipeline/fanout.py
    guard    content rules on the prompt, then on the answer or each chunk    pipeline/guard.py
    hooks    operator functions: pre_request, post_response, on_chunk         pipeline/hooks.py
    cache    answer from the response cache, or share or store the answer      pipeline/cache.py
    context  context blocks from the Memory, Project and Learning services    pipeline/context.py
    retrieve passages from the caller's vector stores (`rag`, file_search)    pipeline/retrieve.py
    call     route, call the provider (each attempt instrumented), measure    pipeline/call.py

Before the chain, the HTTP layer authenticates the caller (middleware), reads and parses the body
(size, JSON, request limits, schema) into an `Exchange`; after it, a renderer turns the outcome
into JSON or SSE (api/render.py). A stage that has nothing to do for a request passes it through:
the ones that can tell before they run (`skips`: no template, no fan-out, no hooks, the cache
off, no context, no retrieval) are not called at all (pipeline/chain.py); the others (no limits
for the caller, no content rules for the model) at the cost of a call.

`prompt` comes before `admit` because a template may name the model and adds messages: the
caller's allowed models, limits and budget apply to the request that will be sent, and so do the
content rules and the cache key after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_gateway.pipeline.chain import Chain, Stage

MODEL_STAGES = (
    "record",
    "prompt",
    "admit",
    "fanout",
    "guard",
    "hooks",
    "cache",
    "context",
    "retrieve",
    "call",
)


@dataclass(frozen=True)
class Stages:
    """The stage objects, by the names the lists above use (built by app assembly: `Record`,
    `Prompt`, `Admit`, `Fanout`, `Guard`, `Hooks`, `Cache`, `Context`, `Retrieve` and `Call`)."""

    record: Stage
    prompt: Stage
    admit: Stage
    fanout: Stage
    guard: Stage
    hooks: Stage
    cache: Stage
    context: Stage
    retrieve: Stage
    call: Stage

    def chain(self, names: tuple[str, ...]) -> Chain:
        stages: list[Stage] = [getattr(self, name) for name in names]
        return Chain(stages)


@dataclass(frozen=True)
class Chains:
    """The chain each endpoint kind runs."""

    chat: Chain
    embeddings: Chain

    @classmethod
    def build(cls, stages: Stages) -> Chains:
        return cls(chat=stages.chain(MODEL_STAGES), embeddings=stages.chain(MODEL_STAGES))
