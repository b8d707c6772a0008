"""Demo mode: when it turns on, and what it serves. (conftest clears the provider variables.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_gateway.demo import DEMO_MODELS, wants_demo, with_demo
from ai_gateway.settings import load_config


def test_on_when_nothing_is_configured() -> None:
    assert wants_demo(load_config())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_API_KEY", "sk-real"),
        ("ANTHROPIC_API_KEY", "sk-ant-real"),
        ("GOOGLE_API_KEY", "real"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
        ("AI_GATEWAY_DEMO", "false"),
    ],
)
def test_any_real_provider_or_an_explicit_false_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert not wants_demo(load_config())


def test_a_config_file_turns_it_off_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("gateway: {port: 3002}\n")
    assert not wants_demo(load_config(config))
    monkeypatch.setenv("AI_GATEWAY_DEMO", "true")
    assert wants_demo(load_config(config))


def test_serves_one_name_per_wire_format_at_the_emulator() -> None:
    config = with_demo(load_config(), "http://127.0.0.1:9")
    assert config.demo_upstream == "http://127.0.0.1:9"
    groups = {group.name: group.deployments[0] for group in config.models}
    assert set(groups) == {model.name for model in DEMO_MODELS}
    assert {d.provider for d in groups.values()} == {"openai", "anthropic", "gemini"}
    # OpenAI's base URL carries the version path; the other adapters add their own.
    assert groups["demo-gpt"].api_base == "http://127.0.0.1:9/v1"
    assert groups["demo-claude"].api_base == "http://127.0.0.1:9"
    assert groups["demo-gemini"].api_base == "http://127.0.0.1:9"
