"""The model registry: packaged data, lookups, dated-id resolution and user overrides."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from typing import Any

import pydantic
import pytest
import yaml

from ai_gateway.model_registry import (
    CAPABILITIES,
    ModelInfo,
    ModelRegistry,
    load_default_registry,
    parse_registry,
)

PRICE_FIELDS = ("input_price", "output_price", "cached_input_price", "cache_write_price")


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return load_default_registry()


def _chat(model_id: str, provider: str = "openai", **fields: Any) -> ModelInfo:
    return ModelInfo.model_validate(
        {"id": model_id, "provider": provider, "mode": "chat", "context_window": 1000, **fields}
    )


# ---------------------------------------------------------------- packaged data


def test_packaged_registry_covers_every_provider(registry: ModelRegistry) -> None:
    counts = {p: len(registry.for_provider(p)) for p in ("openai", "anthropic", "gemini", "local")}
    assert counts["openai"] >= 13
    assert counts["anthropic"] >= 7
    assert counts["gemini"] >= 5
    assert counts["local"] == 1
    assert sum(counts.values()) == len(registry.all()) == len(registry)


def test_every_packaged_entry_is_usable(registry: ModelRegistry) -> None:
    for model in registry.all():
        assert registry.get(model.provider, model.id) is model
        for alias in model.aliases:
            assert registry.get(model.provider, alias) is model
        assert model.capabilities <= CAPABILITIES
        assert model.input_price is not None, model.id
        if model.mode == "chat":
            assert model.max_output_tokens is not None, model.id
            assert model.output_price is not None, model.id
            assert model.max_output_tokens <= model.context_window, model.id
        else:
            assert model.embedding_dimensions is not None, model.id
            assert model.output_price is None, model.id
        if model.provider == "anthropic":
            assert model.cache_write_price is not None, model.id
        else:
            assert model.cache_write_price is None, model.id


def test_packaged_prices_are_quoted_strings_not_floats() -> None:
    text = (resources.files("ai_gateway") / "data" / "models.yaml").read_text("utf-8")
    entries = yaml.safe_load(text)["models"]
    for entry in entries:
        for field in PRICE_FIELDS:
            if field in entry:
                assert isinstance(entry[field], str), (entry["id"], field, entry[field])


@pytest.mark.parametrize(
    ("provider", "model_id", "prices"),
    [
        ("openai", "gpt-4o-mini", ("0.15", "0.60", "0.075", None)),
        ("openai", "gpt-4o", ("2.50", "10.00", "1.25", None)),
        ("openai", "gpt-4.1", ("2.00", "8.00", "0.50", None)),
        ("openai", "gpt-4.1-nano", ("0.10", "0.40", "0.025", None)),
        ("openai", "o3", ("2.00", "8.00", "0.50", None)),
        ("openai", "o4-mini", ("1.10", "4.40", "0.275", None)),
        ("openai", "gpt-5-nano", ("0.05", "0.40", "0.005", None)),
        ("openai", "text-embedding-3-small", ("0.02", None, None, None)),
        ("anthropic", "claude-sonnet-4-5", ("3.00", "15.00", "0.30", "3.75")),
        ("anthropic", "claude-opus-4-1", ("15.00", "75.00", "1.50", "18.75")),
        ("anthropic", "claude-haiku-4-5", ("1.00", "5.00", "0.10", "1.25")),
        ("anthropic", "claude-3-5-haiku-latest", ("0.80", "4.00", "0.08", "1.00")),
        ("gemini", "gemini-2.5-pro", ("1.25", "10.00", "0.125", None)),
        ("gemini", "gemini-2.5-flash", ("0.30", "2.50", "0.03", None)),
        ("gemini", "gemini-2.5-flash-lite", ("0.10", "0.40", "0.01", None)),
        ("gemini", "gemini-embedding-001", ("0.15", None, None, None)),
        ("local", "all-minilm-l6-v2", ("0", None, None, None)),
    ],
)
def test_known_prices(
    registry: ModelRegistry,
    provider: str,
    model_id: str,
    prices: tuple[str | None, str | None, str | None, str | None],
) -> None:
    model = registry.get(provider, model_id)
    assert model is not None
    actual = tuple(getattr(model, field) for field in PRICE_FIELDS)
    assert actual == tuple(None if p is None else Decimal(p) for p in prices)


def test_known_limits_and_dimensions(registry: ModelRegistry) -> None:
    def limits(provider: str, model_id: str) -> tuple[int, int | None, int | None]:
        model = registry.get(provider, model_id)
        assert model is not None
        return model.context_window, model.max_output_tokens, model.embedding_dimensions

    assert limits("openai", "gpt-4o-mini") == (128_000, 16_384, None)
    assert limits("openai", "gpt-4.1") == (1_047_576, 32_768, None)
    assert limits("openai", "text-embedding-3-large") == (8191, None, 3072)
    assert limits("anthropic", "claude-sonnet-4-5") == (200_000, 64_000, None)
    assert limits("gemini", "gemini-2.5-flash") == (1_048_576, 65_536, None)
    assert limits("local", "all-minilm-l6-v2") == (256, None, 384)


def test_capabilities(registry: ModelRegistry) -> None:
    o3 = registry.get("openai", "o3")
    embed = registry.get("openai", "text-embedding-3-small")
    assert o3 is not None
    assert embed is not None
    assert o3.supports("reasoning")
    assert o3.supports("tools")
    assert not embed.supports("tools")
    assert not o3.supports("teleportation")


# ---------------------------------------------------------------- exactness


def test_prices_are_exact_decimals(registry: ModelRegistry) -> None:
    nano = registry.get("openai", "gpt-4.1-nano")
    assert nano is not None
    assert nano.input_price is not None
    assert type(nano.input_price) is Decimal
    # 3 x 0.10 is exactly 0.30 as a Decimal; as floats 0.1 * 3 != 0.3.
    assert nano.input_price * 3 == Decimal("0.30")
    # Cost of 1,234 input tokens of gpt-4o-mini at $0.15 per 1M, to the last digit.
    mini = registry.get("openai", "gpt-4o-mini")
    assert mini is not None
    assert mini.input_price is not None
    assert mini.input_price * 1234 / 1_000_000 == Decimal("0.0001851")


def test_float_prices_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="float"):
        _chat("m", input_price=0.1)


# ---------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("provider", "requested", "expected"),
    [
        ("openai", "gpt-4o", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-2024-11-20", "gpt-4o"),
        ("openai", "gpt-4o-2031-01-01", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4o-mini-2031-01-01", "gpt-4o-mini"),
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("openai", "o4-mini-2025-04-16", "o4-mini"),
        ("openai", "gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-5-20260101", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic", "claude-opus-4-20250514", "claude-opus-4-0"),
        ("anthropic", "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"),
        ("gemini", "gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gemini", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini", "models/gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-flash-lite-001", "gemini-2.5-flash-lite"),
        ("gemini", "models/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"),
    ],
)
def test_get_resolves_ids_aliases_and_snapshots(
    registry: ModelRegistry, provider: str, requested: str, expected: str
) -> None:
    found = registry.get(provider, requested)
    assert found is not None
    assert found.id == expected
    assert registry.get(provider, requested) is found  # the memoised path agrees


@pytest.mark.parametrize(
    ("provider", "requested"),
    [
        ("openai", "gpt-4o-audio-preview"),  # a different model, not a snapshot
        ("openai", "gpt-4o-mini-tts"),
        ("openai", "gpt-4"),
        ("openai", "gpt-4o-"),
        ("openai", ""),
        ("anthropic", "claude-opus-4-7"),  # a newer model must not inherit 4.0 prices
        ("anthropic", "gpt-4o"),  # right id, wrong provider
        ("nobody", "gpt-4o"),
        ("gemini", "gemini-2.5-flash-image"),
    ],
)
def test_get_returns_none_for_unknown_models(
    registry: ModelRegistry, provider: str, requested: str
) -> None:
    assert registry.get(provider, requested) is None


def test_shorter_id_never_captures_a_longer_model() -> None:
    # Even without gpt-4o-mini in the registry, its snapshots are not priced as gpt-4o.
    only_4o = ModelRegistry([_chat("gpt-4o")])
    assert only_4o.get("openai", "gpt-4o-mini-2024-07-18") is None
    assert only_4o.get("openai", "gpt-4o-mini") is None
    both = ModelRegistry([_chat("gpt-4o"), _chat("gpt-4o-mini")])
    found = both.get("openai", "gpt-4o-mini-2024-07-18")
    assert found is not None
    assert found.id == "gpt-4o-mini"


def test_many_unknown_names_still_resolve_correctly() -> None:
    registry = ModelRegistry([_chat("gpt-4o")])
    for n in range(10_000):
        assert registry.get("openai", f"unknown-{n}") is None
    found = registry.get("openai", "gpt-4o-2024-11-20")
    assert found is not None
    assert found.id == "gpt-4o"


def test_for_provider_and_all_keep_registry_order() -> None:
    a, b, c = _chat("a"), _chat("b", provider="anthropic"), _chat("c")
    registry = ModelRegistry([a, b, c])
    assert registry.all() == (a, b, c)
    assert registry.for_provider("openai") == (a, c)
    assert registry.for_provider("anthropic") == (b,)
    assert registry.for_provider("gemini") == ()


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="'x' is used by both"):
        ModelRegistry([_chat("x"), _chat("y", aliases=["x"])])
    # The same id under two providers is fine.
    ModelRegistry([_chat("x"), _chat("x", provider="gemini")])


def test_model_info_is_frozen() -> None:
    model = _chat("m")
    with pytest.raises(pydantic.ValidationError):
        model.context_window = 5  # type: ignore[misc]


# ---------------------------------------------------------------- overrides


def test_override_adds_a_model(registry: ModelRegistry) -> None:
    updated = registry.with_overrides(
        [
            {
                "id": "my-finetune",
                "provider": "openai",
                "mode": "chat",
                "context_window": 16_000,
                "max_output_tokens": 4000,
                "input_price": "3",
                "output_price": "12.5",
                "capabilities": ["tools", "streaming"],
                "aliases": ["ft:my-finetune"],
            }
        ]
    )
    added = updated.get("openai", "ft:my-finetune")
    assert added is not None
    assert added.id == "my-finetune"
    assert added.output_price == Decimal("12.5")
    assert len(updated) == len(registry) + 1
    assert registry.get("openai", "my-finetune") is None  # the original is untouched


def test_override_changes_one_field_and_keeps_the_rest(registry: ModelRegistry) -> None:
    updated = registry.with_overrides(
        [{"provider": "openai", "id": "gpt-4o-mini", "input_price": "0.12"}]
    )
    before = registry.get("openai", "gpt-4o-mini")
    after = updated.get("openai", "gpt-4o-mini-2024-07-18")
    assert before is not None
    assert after is not None
    assert after.input_price == Decimal("0.12")
    assert before.input_price == Decimal("0.15")
    assert after.output_price == before.output_price
    assert after.context_window == before.context_window
    assert after.aliases == before.aliases
    assert [m.id for m in updated.all()] == [m.id for m in registry.all()]


def test_override_null_clears_an_optional_field(registry: ModelRegistry) -> None:
    updated = registry.with_overrides(
        [{"provider": "openai", "id": "gpt-4o", "cached_input_price": None}]
    )
    model = updated.get("openai", "gpt-4o")
    assert model is not None
    assert model.cached_input_price is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"provider": "openai", "id": "gpt-4o", "context_window": 0}, "context_window"),
        ({"provider": "openai", "id": "gpt-4o", "input_price": "-1"}, "input_price"),
        ({"provider": "openai", "id": "gpt-4o", "input_price": 2.5}, "input_price: .*float"),
        ({"provider": "openai", "id": "gpt-4o", "input_price": "cheap"}, "input_price"),
        ({"provider": "openai", "id": "gpt-4o", "inptu_price": "1"}, "inptu_price"),
        ({"provider": "openai", "id": "gpt-4o", "capabilities": ["telepathy"]}, "capabilities"),
        ({"provider": "openai", "id": "brand-new", "mode": "chat"}, "context_window"),
        ({"provider": "acme", "id": "x", "mode": "chat", "context_window": 8}, "provider"),
        (
            {"provider": "local", "id": "e", "mode": "embedding", "context_window": 8},
            "embedding_dimensions",
        ),
        ({"provider": "openai", "mode": "chat"}, "id: required"),
        ({"id": "gpt-4o", "input_price": "1"}, "provider: required"),
    ],
)
def test_bad_override_names_the_entry_and_field(
    registry: ModelRegistry, entry: dict[str, Any], expected: str
) -> None:
    good = {"provider": "openai", "id": "gpt-4o", "output_price": "9"}
    with pytest.raises(ValueError, match=r"model override #1\b.*" + expected):
        registry.with_overrides([good, entry])


def test_override_alias_collision_is_rejected(registry: ModelRegistry) -> None:
    entry = {"provider": "openai", "id": "gpt-4o", "aliases": ["gpt-4o-mini"]}
    with pytest.raises(ValueError, match="'gpt-4o-mini' is used by both"):
        registry.with_overrides([entry])


# ---------------------------------------------------------------- parsing


def test_parse_registry_reports_source_index_id_and_field() -> None:
    data = {
        "models": [
            {"id": "ok", "provider": "openai", "mode": "chat", "context_window": 10},
            {"id": "broken", "provider": "openai", "mode": "chat", "context_window": "big"},
        ]
    }
    with pytest.raises(ValueError, match=r"^custom\.yaml: models\[1\] \(broken\): context_window"):
        parse_registry(data, "custom.yaml")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "expected a mapping with a 'models' list"),
        ([], "expected a mapping with a 'models' list"),
        ({"models": {}}, "expected a mapping with a 'models' list"),
        ({"models": [], "extra": 1}, "unknown top-level keys"),
        ({"models": ["gpt-4o"]}, r"models\[0\]: expected a mapping"),
    ],
)
def test_parse_registry_rejects_malformed_files(data: object, expected: str) -> None:
    with pytest.raises(ValueError, match=r"^src\.yaml: .*" + expected):
        parse_registry(data, "src.yaml")


def test_parse_registry_rejects_duplicate_ids() -> None:
    entry = {"id": "dup", "provider": "gemini", "mode": "chat", "context_window": 10}
    with pytest.raises(ValueError, match=r"src\.yaml: gemini model name 'dup'"):
        parse_registry({"models": [entry, entry]}, "src.yaml")
