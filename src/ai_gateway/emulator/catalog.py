"""The models each emulated provider lists, and which model names it accepts.

A provider accepts every model it lists plus any name with one of its family prefixes
(e.g. any ``gpt-*`` for OpenAI, any ``claude-*`` for Anthropic, any ``gemini-*`` for
Gemini); anything else is answered with that provider's "model not found" error.
"""

from __future__ import annotations

from dataclasses import dataclass

CREATED = 1_715_367_049


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    embedding: bool = False
    input_limit: int = 128_000
    output_limit: int = 8_192


OPENAI_MODELS = (
    ModelInfo("gpt-4o", "GPT-4o"),
    ModelInfo("gpt-4o-mini", "GPT-4o mini"),
    ModelInfo("gpt-4.1", "GPT-4.1"),
    ModelInfo("gpt-4.1-mini", "GPT-4.1 mini"),
    ModelInfo("o4-mini", "o4-mini"),
    ModelInfo("gpt-3.5-turbo", "GPT-3.5 Turbo"),
    ModelInfo("text-embedding-3-small", "text-embedding-3-small", embedding=True),
    ModelInfo("text-embedding-3-large", "text-embedding-3-large", embedding=True),
    ModelInfo("text-embedding-ada-002", "text-embedding-ada-002", embedding=True),
)
ANTHROPIC_MODELS = (
    ModelInfo("claude-sonnet-4-20250514", "Claude Sonnet 4", input_limit=200_000),
    ModelInfo("claude-opus-4-20250514", "Claude Opus 4", input_limit=200_000),
    ModelInfo("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", input_limit=200_000),
    ModelInfo("claude-3-5-haiku-20241022", "Claude Haiku 3.5", input_limit=200_000),
    ModelInfo("claude-3-haiku-20240307", "Claude Haiku 3", input_limit=200_000),
)
GEMINI_MODELS = (
    ModelInfo("gemini-2.5-pro", "Gemini 2.5 Pro", input_limit=1_048_576, output_limit=65_536),
    ModelInfo("gemini-2.5-flash", "Gemini 2.5 Flash", input_limit=1_048_576, output_limit=65_536),
    ModelInfo("gemini-2.0-flash", "Gemini 2.0 Flash", input_limit=1_048_576),
    ModelInfo("gemini-2.0-flash-lite", "Gemini 2.0 Flash-Lite", input_limit=1_048_576),
    ModelInfo("gemini-1.5-flash", "Gemini 1.5 Flash", input_limit=1_000_000),
    ModelInfo("text-embedding-004", "Text Embedding 004", embedding=True, input_limit=2_048),
    ModelInfo("gemini-embedding-001", "Gemini Embedding 001", embedding=True, input_limit=2_048),
)
_CATALOG = {"openai": OPENAI_MODELS, "anthropic": ANTHROPIC_MODELS, "gemini": GEMINI_MODELS}
_PREFIXES = {
    "openai": ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "ft:"),
    "anthropic": ("claude-",),
    "gemini": ("gemini-", "gemma-", "text-embedding-", "embedding-", "learnlm-"),
}


def models(provider: str) -> tuple[ModelInfo, ...]:
    return _CATALOG[provider]


def find(provider: str, model: str) -> ModelInfo | None:
    """The catalogue entry for ``model``, or a synthetic one for an accepted family name."""
    for info in _CATALOG[provider]:
        if info.id == model:
            return info
    if model.startswith(_PREFIXES[provider]):
        return ModelInfo(model, model, embedding="embedding" in model)
    return None
