from __future__ import annotations

from pathlib import Path

import pytest

from ai_gateway.routing.deployments import DeploymentTable
from ai_gateway.settings import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    config = load_config()
    assert config.gateway.port == 3001
    assert config.gateway.host == "127.0.0.1"
    assert config.gateway.max_body_bytes == 10 * 1024 * 1024
    assert config.models == ()


def test_flat_and_list_forms_and_interpolation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-from-env-123")
    path = write(
        tmp_path,
        """
models:
  - name: fast
    provider: openai
    model: gpt-4o-mini
    api_base: http://127.0.0.1:8000/v1/
    api_key: ${MY_KEY}
  - name: smart
    deployments:
      - {provider: openai, model: gpt-4o, api_key: "${MISSING:-sk-default-456}", weight: 3}
      - {provider: openai, model: gpt-4.1, api_key: sk-literal-789}
""",
    )
    config = load_config(path)
    table = DeploymentTable.from_config(config)
    (fast,) = table.resolve("fast")
    assert fast.model == "gpt-4o-mini"
    assert fast.api_base == "http://127.0.0.1:8000/v1"  # trailing slash removed
    assert fast.api_key == "sk-from-env-123"
    smart = table.resolve("smart")
    assert [d.model for d in smart] == ["gpt-4o", "gpt-4.1"]
    assert smart[0].api_key == "sk-default-456"
    assert smart[0].weight == 3
    assert "sk-" not in repr(smart[0])


def test_unset_variable_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, "models:\n  - {name: a, provider: openai, model: m, api_key: '${NOPE_KEY}'}\n"
    )
    with pytest.raises(ConfigError, match=r"gateway\.yaml: models\[0\]\.api_key.*\$\{NOPE_KEY\}"):
        load_config(path)


def test_default_also_replaces_an_empty_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMPTY_KEY", "")
    path = write(
        tmp_path,
        "providers:\n  openai: {api_key: '${EMPTY_KEY}'}\n"
        "models:\n  - {name: a, provider: openai, model: m, api_key: '${EMPTY_KEY:-sk-dflt-1}'}\n",
    )
    config = load_config(path)
    assert config.providers["openai"].api_key is None  # empty means unset
    (dep,) = DeploymentTable.from_config(config).resolve("a")
    assert dep.api_key == "sk-dflt-1"


def test_keyless_openai_compatible_server_via_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    table = DeploymentTable.from_config(load_config())
    assert table.direct_providers == ("openai", "local")
    (dep,) = table.resolve("openai/llama3.2")
    assert dep.api_key is None
    assert dep.api_base == "http://127.0.0.1:11434/v1"


def test_provider_without_an_adapter_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {name: c, provider: gemini, model: g, api_key: k}\n")
    with pytest.raises(ConfigError, match="provider 'gemini' is not supported"):
        DeploymentTable.from_config(load_config(path), available=("openai",))


def test_registry_overrides_from_config(tmp_path: Path) -> None:
    from ai_gateway.app import create_app

    path = write(
        tmp_path,
        "registry:\n  - {provider: openai, id: gpt-4o-mini, input_price: '0.20'}\n"
        "  - {provider: openai, id: my-finetune, mode: chat, context_window: 4096}\n",
    )
    registry = create_app(load_config(path)).state.gateway.registry
    assert str(registry.get("openai", "gpt-4o-mini").input_price) == "0.20"
    assert registry.get("openai", "my-finetune").context_window == 4096
    bad = write(
        tmp_path, "registry:\n  - {provider: openai, id: gpt-4o-mini, context_window: -1}\n"
    )
    with pytest.raises(ConfigError, match="registry"):
        create_app(load_config(bad))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "models:\n  - {name: a, provider: azure, model: m}\n",
            "models[0].provider",
        ),
        (
            "models:\n  - {name: a, provider: openai}\n",
            "models[0].model: Field required",
        ),
        (
            "models:\n  - name: a\n    deployments:\n"
            "      - {provider: openai, model: m, weight: 0}\n",
            "models[0].deployments[0].weight: Input should be greater than 0",
        ),
        ("models:\n  - {name: a, provider: openai, model: m, wieght: 2}\n", "wieght"),
        ("modles: []\n", "modles: Extra inputs are not permitted"),
        ("models: [\n", "not valid YAML"),
        ("- just a list\n", "top level must be a mapping"),
        ("gateway: {port: 99999}\n", "gateway.port"),
        ("models:\n  - {name: a, provider: openai, model: m, api_base: ftp://x}\n", "api_base"),
        (
            "models:\n  - {name: a, provider: openai, model: m}\n"
            "  - {name: a, provider: openai, model: n}\n",
            "listed twice",
        ),
    ],
)
def test_bad_files_fail_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)
    assert "Value error" not in str(info.value)
    assert "at least 1 item" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.yaml")


def test_deployment_without_any_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {name: claude, provider: anthropic, model: claude-x}\n")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        DeploymentTable.from_config(load_config(path))


def test_openai_compatible_server_needs_no_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models:\n  - {name: local, provider: openai, model: llama3, "
        "api_base: 'http://127.0.0.1:11434/v1'}\n",
    )
    (dep,) = DeploymentTable.from_config(load_config(path)).resolve("local")
    assert dep.api_key is None


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "gateway: {port: 4000, max_body_bytes: 2048}\n")
    assert load_config(path).gateway.port == 4000
    monkeypatch.setenv("AI_GATEWAY_PORT", "4001")
    config = load_config(path)
    assert config.gateway.port == 4001
    assert config.gateway.max_body_bytes == 2048
    assert load_config(path, {"port": 4002}).gateway.port == 4002
    monkeypatch.setenv("AI_GATEWAY_CONFIG", str(path))
    assert load_config().gateway.max_body_bytes == 2048


def test_provider_env_and_google_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env-1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-google-env")
    config = load_config()
    table = DeploymentTable.from_config(config)
    assert table.direct_providers == ("openai", "gemini", "local")
    (dep,) = table.resolve("openai/gpt-4o-mini")
    assert (dep.provider, dep.model, dep.api_base) == (
        "openai",
        "gpt-4o-mini",
        "http://127.0.0.1:9/v1",
    )
    assert dep.api_key == "sk-openai-env-1"
    assert not dep.from_config
    (gem,) = table.resolve("gemini/gemini-2.5-flash")
    assert gem.api_base == "https://generativelanguage.googleapis.com"


def test_bad_base_url_in_env_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "api.openai.com/v1")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        load_config()


def test_the_cache_section_loads_prompt_caching(tmp_path: Path) -> None:
    assert load_config().cache.prompt_caching.enabled is True  # the default
    path = write(tmp_path, "cache:\n  prompt_caching: {enabled: false, min_tokens: 2048}\n")
    prompt_caching = load_config(path).cache.prompt_caching
    assert (prompt_caching.enabled, prompt_caching.min_tokens) == (False, 2048)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "cache:\n  prompt_caching: {min_tokenz: 2048}\n",
            "cache.prompt_caching.min_tokenz: Extra inputs are not permitted",
        ),
        (
            "cache:\n  prompt_caching: {min_tokens: 0}\n",
            "cache.prompt_caching.min_tokens: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_wrong_cache_field_is_a_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {fragment}"


def test_rag_server_and_shared_files_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://127.0.0.1:6333")
    monkeypatch.setenv("AI_GATEWAY_RAG_FILES_DIR", "/srv/shared/rag-files")
    rag = load_config().rag
    assert rag.qdrant_url is not None
    assert rag.qdrant_url.get_secret_value() == "http://127.0.0.1:6333"
    assert rag.files_dir == "/srv/shared/rag-files"
    # The file's own value wins over the variable.
    path = write(tmp_path, "rag: {files_dir: /data/files}\n")
    assert load_config(path).rag.files_dir == "/data/files"
