"""App assembly of `POST /ai/code/generate` (api/code.py): the model name a request without one
gets, and the built-in template put in the prompt store on first use (codegen/seed.py)."""

from __future__ import annotations

from ai_gateway.api.code import CodeAPI
from ai_gateway.api.common import BodyLimit
from ai_gateway.codegen.seed import TemplateSeed
from ai_gateway.errors import InvalidRequestError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.prompts.catalog import PromptCatalog
from ai_gateway.settings import Config


def code_api(
    config: Config, chains: Chains, body: BodyLimit, metrics: Metrics, catalog: PromptCatalog
) -> CodeAPI:
    names = [group.name for group in config.models]
    preferred = config.codegen.model

    def model_of(requested: str | None) -> str:
        if requested is not None:
            return requested
        if preferred in names:
            return preferred
        if names:
            return names[0]
        raise InvalidRequestError(
            "Name the model to generate code with: this gateway has no model names configured "
            f"(neither {preferred!r} nor any other).",
            param="model",
        )

    return CodeAPI(
        chains,
        config.security.request_limits,
        body,
        metrics,
        model_of,
        config.codegen.template_label,
        TemplateSeed(catalog),
    )
