from __future__ import annotations

import email.utils
import time

import pytest

from ai_gateway import errors
from ai_gateway.providers.errors import upstream_error
from ai_gateway.providers.http import retry_after_seconds
from ai_gateway.providers.openai import map_openai_error
from ai_gateway.routing.deployments import Deployment

KEY = "sk-proj-CANARYcanary1234567890"
CONFIGURED = Deployment(
    id="fast/0", group="fast", provider="openai", model="gpt-x", api_base="http://u", api_key=KEY
)
DIRECT = Deployment(
    id="openai/gpt-x",
    group="openai/gpt-x",
    provider="openai",
    model="gpt-x",
    api_base="http://u",
    api_key=KEY,
    from_config=False,
)


def body(message: str, param: str | None = None) -> bytes:
    import orjson

    return orjson.dumps({"error": {"message": message, "type": "x", "param": param, "code": None}})


@pytest.mark.parametrize(
    ("status", "expected_cls", "expected_status"),
    [
        (400, errors.UpstreamBadRequestError, 400),
        (401, errors.UpstreamAuthError, 502),
        (403, errors.UpstreamAuthError, 502),
        (408, errors.UpstreamTimeoutError, 504),
        (413, errors.UpstreamPayloadTooLargeError, 413),
        (422, errors.UpstreamBadRequestError, 400),
        (429, errors.UpstreamRateLimitError, 429),
        (500, errors.UpstreamError, 502),
        (502, errors.UpstreamError, 502),
        (504, errors.UpstreamTimeoutError, 504),
        (503, errors.UpstreamUnavailableError, 503),
        (529, errors.UpstreamUnavailableError, 503),
    ],
)
def test_status_table(status: int, expected_cls: type, expected_status: int) -> None:
    err = map_openai_error(CONFIGURED, status, body(f"Incorrect API key provided: {KEY}"), {})
    assert type(err) is expected_cls
    assert err.status == expected_status
    rendered = err.to_json().decode()
    assert KEY not in rendered
    assert "CANARY" not in rendered


def test_auth_failure_blames_configuration_not_client() -> None:
    err = map_openai_error(CONFIGURED, 401, body("bad key"), {})
    assert "gateway's configuration" in err.message
    assert err.code == "upstream_authentication_failed"


def test_404_depends_on_who_chose_the_model() -> None:
    assert map_openai_error(CONFIGURED, 404, body("no such model"), {}).status == 502
    direct = map_openai_error(DIRECT, 404, body("no such model"), {})
    assert direct.status == 404
    assert direct.param == "model"


def test_bad_request_keeps_upstream_message_and_param() -> None:
    err = map_openai_error(CONFIGURED, 400, body("'temperature' too high", "temperature"), {})
    assert "'temperature' too high" in err.message
    assert err.param == "temperature"


def test_429_always_carries_retry_after() -> None:
    assert map_openai_error(CONFIGURED, 429, b"{}", {}).headers == {"Retry-After": "1"}
    assert map_openai_error(CONFIGURED, 429, b"{}", {"retry-after": "7"}).headers == {
        "Retry-After": "7"
    }
    assert map_openai_error(CONFIGURED, 429, b"{}", {"retry-after-ms": "2500"}).headers == {
        "Retry-After": "3"
    }


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    value = retry_after_seconds({"retry-after": when})
    assert value is not None
    assert 25 <= value <= 31
    assert retry_after_seconds({"retry-after": "soon"}) is None


def test_non_json_error_body_is_quoted_briefly() -> None:
    err = map_openai_error(CONFIGURED, 500, b"<html>Bad Gateway</html>", {})
    assert "<html>Bad Gateway</html>" in err.message
    assert err.status == 502


def test_generic_helper_never_leaks_the_key() -> None:
    err = upstream_error(CONFIGURED, 400, f"your key {KEY} and Bearer abcdefghijkl", {})
    assert KEY not in err.message
    assert "abcdefghijkl" not in err.message


def test_an_upstream_param_that_echoes_the_key_is_scrubbed() -> None:
    err = map_openai_error(CONFIGURED, 400, body("bad", param=f"key={KEY}"), {})
    assert KEY not in (err.param or "")
    assert KEY not in err.to_json().decode()
