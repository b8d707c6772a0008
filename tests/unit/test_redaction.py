from __future__ import annotations

import pytest

from ai_gateway.redaction import REDACTED, scrub


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnop",
        "sk-ant-api03-abcdefghijklmnop",
        "AIzaSyA1234567890abcdefghijklmno",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl",
    ],
)
def test_credential_shapes_are_removed(secret: str) -> None:
    assert scrub(f"key={secret}!") == f"key={REDACTED}!"


def test_explicit_secrets_of_any_shape_are_removed() -> None:
    assert (
        scrub("token plain-secret-value here", ["plain-secret-value"]) == f"token {REDACTED} here"
    )


def test_bearer_values_are_removed_and_ordinary_text_kept() -> None:
    assert scrub("Authorization: Bearer abc.def-ghi_jkl") == f"Authorization: Bearer {REDACTED}"
    assert scrub("The model gpt-4o-mini said: ask me") == "The model gpt-4o-mini said: ask me"
