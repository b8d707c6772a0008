from __future__ import annotations

import pytest
from pydantic import SecretStr

from ai_gateway.errors import ModelNotFoundError
from ai_gateway.routing.deployments import DeploymentTable
from ai_gateway.settings import Config, ModelGroupConfig, ProviderConfig


def table(**providers: ProviderConfig) -> DeploymentTable:
    group = ModelGroupConfig.model_validate(
        {"name": "fast", "provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-x-123456"}
    )
    return DeploymentTable.from_config(Config(models=(group,), providers=providers))


def test_configured_name_resolves_to_its_deployments() -> None:
    (dep,) = table().resolve("fast")
    assert (dep.group, dep.provider, dep.model, dep.from_config) == (
        "fast",
        "openai",
        "gpt-4o-mini",
        True,
    )
    assert dep.api_base == "https://api.openai.com/v1"


def test_unknown_model_is_404_saying_how_to_list() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        table().resolve("gpt-5-turbo-ultra")
    assert info.value.status == 404
    assert "GET /v1/models" in info.value.message
    assert info.value.param == "model"


def test_provider_prefix_without_key_says_which_provider() -> None:
    with pytest.raises(ModelNotFoundError, match="provider 'anthropic' has no API key"):
        table().resolve("anthropic/claude-sonnet-4-5")


def test_provider_prefix_with_key_builds_a_direct_deployment() -> None:
    t = table(anthropic=ProviderConfig(api_key=SecretStr("sk-ant-123456789")))
    (dep,) = t.resolve("anthropic/claude-sonnet-4-5")
    assert (dep.provider, dep.model, dep.from_config) == ("anthropic", "claude-sonnet-4-5", False)
    assert t.resolve("anthropic/claude-sonnet-4-5")[0] is dep  # cached


def test_a_bare_unknown_prefix_is_not_a_provider() -> None:
    with pytest.raises(ModelNotFoundError):
        table().resolve("azure/gpt-4o")


def test_client_chosen_model_labels_are_bounded() -> None:
    from ai_gateway.observability.metrics import MAX_DIRECT_MODEL_LABELS, Metrics

    metrics = Metrics()
    labels = {metrics.model_label(f"openai/m{i}", configured=False) for i in range(1000)}
    assert len(labels) == MAX_DIRECT_MODEL_LABELS + 1
    assert "other" in labels
    assert metrics.model_label("openai/m0", configured=False) == "openai/m0"  # still known
    assert metrics.model_label("fast", configured=True) == "fast"  # configured names always
