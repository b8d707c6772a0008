"""Label values that clients choose are bounded in length as well as in number."""

from __future__ import annotations

from ai_gateway.api.render import header_text
from ai_gateway.observability.metrics import MAX_DIRECT_MODEL_LABELS, MAX_LABEL_CHARS, Metrics


def test_a_long_model_name_is_other() -> None:
    metrics = Metrics()
    assert metrics.model_label("openai/" + "x" * 2_000_000, configured=False) == "other"
    assert metrics.model_label("y" * (MAX_LABEL_CHARS + 1), configured=True) == "other"
    name = "openai/" + "z" * (MAX_LABEL_CHARS - 7)
    assert metrics.model_label(name, configured=False) == name


def test_the_number_of_direct_names_is_still_bounded() -> None:
    metrics = Metrics()
    for i in range(MAX_DIRECT_MODEL_LABELS):
        assert metrics.model_label(f"openai/m{i}", configured=False) == f"openai/m{i}"
    assert metrics.model_label("openai/one-more", configured=False) == "other"


def test_no_series_carries_a_long_label() -> None:
    metrics = Metrics()
    long = "x" * 1_000_000
    metrics.observe_request("/chat/completions", long, "openai", 200, 0.1)
    metrics.upstream_seconds("openai", long, 0.1)
    metrics.first_token_seconds("openai", long, 0.1)
    metrics.retry(long, "openai", "upstream_error")
    metrics.observe_usage(long, "openai", {"prompt_tokens": 3, "completion_tokens": 2})
    text = metrics.render()
    assert len(text) < 100_000
    assert b'model="other"' in text


def test_header_text_never_carries_control_or_non_ascii_characters() -> None:
    assert header_text("openai/gpt-4o@x:y") == "openai/gpt-4o@x:y"
    assert header_text("gpt-中文") == "gpt-%E4%B8%AD%E6%96%87"
    assert header_text("a\r\nx-injected: 1\x00") == "a%0D%0Ax-injected:%201%00"
    assert header_text("100%\x7f") == "100%25%7F"
