"""App assembly of the context-building stage (pipeline/context.py): the DevMentor services'
clients when `integrations.enabled`, the gateway's token counter for the blocks' budgets, and
the context window of a model name (the smallest of its deployments' that the registry knows)."""

from __future__ import annotations

from collections.abc import Callable

from ai_gateway.errors import GatewayError
from ai_gateway.integrations.sources import build_context_sources
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.context import Context
from ai_gateway.routing.deployments import DeploymentTable
from ai_gateway.settings import Config
from ai_gateway.usage.tokens import TokenCounter

# The blocks are counted with one encoding whatever the model (o200k, OpenAI's current one):
# a budget is a bound on the size of the prompt, not a bill.
COUNTED_AS = ("openai", "gpt-4o")


def context_stage(
    config: Config,
    deployments: DeploymentTable,
    registry: ModelRegistry,
    counter: TokenCounter,
    metrics: Metrics,
) -> Context:
    integrations = config.integrations
    sources = build_context_sources(integrations) if integrations.enabled else None
    count = block_counter(counter)
    return Context(
        sources, integrations.blocks, count, model_window(deployments, registry), metrics
    )


def block_counter(counter: TokenCounter) -> Callable[[str], int]:
    """How the context blocks (and retrieved passages) are counted."""

    def count(text: str) -> int:
        return counter.count_text(*COUNTED_AS, (text,)).tokens

    return count


def model_window(
    deployments: DeploymentTable, registry: ModelRegistry
) -> Callable[[str], int | None]:
    """The context window of a model name: the smallest of its deployments' that the registry
    knows; None when it knows none."""

    def window_of(model: str) -> int | None:
        try:
            targets = deployments.resolve(model)
        except GatewayError:
            return None
        windows = [
            info.context_window
            for dep in targets
            if (info := registry.get(dep.provider, dep.model)) is not None
        ]
        return min(windows) if windows else None

    return window_of
