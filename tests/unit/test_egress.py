"""Which upstream URLs go through the egress proxy (HTTPS_PROXY / HTTP_PROXY / NO_PROXY)."""

from __future__ import annotations

import pytest

from ai_gateway.providers.egress import DIRECT, EgressProxies

PROXY = "http://proxy.corp:3128"


def test_no_variables_no_proxy() -> None:
    egress = EgressProxies({})
    assert not egress.active
    assert egress.route("https://api.openai.com/v1/chat/completions") == DIRECT


def test_each_scheme_uses_its_own_variable() -> None:
    egress = EgressProxies({"https": PROXY})
    assert egress.route("https://api.openai.com/v1/x") == (PROXY, None, None)
    assert egress.route("http://internal:8080/v1/x") == DIRECT  # no HTTP_PROXY


def test_credentials_become_a_header_and_leave_the_url() -> None:
    url = "http://me:p%40ss@proxy.corp:3128"
    egress = EgressProxies({"https": url, "http": url})
    auth = {"Proxy-Authorization": "Basic bWU6cEBzcw=="}  # me:p@ss
    # https: on the CONNECT; http: on the request itself, which the proxy forwards.
    assert egress.route("https://api.anthropic.com/v1/messages") == (PROXY, auth, None)
    assert egress.route("http://internal/v1/messages") == (PROXY, None, auth)
    assert "p@ss" not in str(egress.describe())
    assert "me:" not in str(egress.describe())


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("api.openai.com", "https://api.openai.com/v1", True),
        ("openai.com", "https://api.openai.com/v1", True),  # subdomains too
        (".openai.com", "https://api.openai.com/v1", True),
        ("*.openai.com", "https://api.openai.com/v1", True),
        ("openai.com", "https://notopenai.com/v1", False),
        ("*", "https://generativelanguage.googleapis.com/v1", True),
        ("10.0.0.0/8", "https://10.1.2.3/v1", True),
        ("10.0.0.0/8", "https://11.1.2.3/v1", False),
        ("internal:8080", "https://internal:8080/v1", True),
        ("internal:8080", "https://internal/v1", False),  # port 443
        ("api.anthropic.com:443", "https://api.anthropic.com/v1", True),
        (" localhost , 127.0.0.1 ", "https://127.0.0.1:9/v1", True),
        ("[::1]", "https://[::1]:9/v1", True),
        ("", "https://api.openai.com/v1", False),
    ],
)
def test_no_proxy(no_proxy: str, url: str, direct: bool) -> None:
    egress = EgressProxies({"https": PROXY, "no": no_proxy})
    route = egress.route(url)
    assert (route == DIRECT) is direct
    assert egress.route(url) is route  # cached per scheme, host and port
