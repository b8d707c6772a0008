"""Prompt templates through a real gateway, with the official `openai` SDK as the client: created
over the admin API, used in chat requests (`extra_body={"prompt": ...}`), the upstream (the
emulator) receiving the rendered messages; errors as OpenAI errors; the version used in the
response header, the usage record and the request span."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ai_gateway.observability.tracing import Tracing
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer, config_from_yaml

pytestmark = pytest.mark.integration

MASTER = "sk-master-prompts-7d1f"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
REVIEW: dict[str, Any] = {
    "id": "code-review",
    "description": "Reviews a snippet",
    "template": {
        "model": "fast",
        "temperature": 0.2,
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "You review {{ language }} code. Be {{ tone }}."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Review:\n{{ code }}"}],
            },
        ],
    },
    "variables": {
        "type": "object",
        "properties": {
            "language": {"type": "string", "enum": ["python", "go"]},
            "tone": {"type": "string"},
            "code": {"type": "string", "maxLength": 2000},
        },
        "required": ["language", "code"],
        "additionalProperties": False,
    },
    "labels": ["production"],
}
VARIABLES = {"language": "python", "tone": "kind", "code": "print(1)"}


def api(gw: GatewayServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gw.url}{path}", headers=ADMIN, timeout=20, **kwargs)


def create(gw: GatewayServer, body: dict[str, Any] = REVIEW) -> dict[str, Any]:
    resp = api(gw, "POST", "/v1/prompts", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def sdk(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)


def last_sent(emu: EmulatorServer) -> dict[str, Any]:
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")]
    assert sent
    return sent[-1]["body"]  # type: ignore[no-any-return]


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu), master_key=MASTER)


def test_a_chat_request_sends_the_rendered_template_upstream(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    created = create(gw)
    assert created["latest_version"] == 1
    assert created["labels"] == {"production": 1}
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="fast",
            messages=[{"role": "user", "content": "And mind the style."}],
            extra_body={"prompt": {"id": "code-review", "variables": VARIABLES}},
        )
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert raw.headers["x-gateway-prompt"] == "code-review@1"
    sent = last_sent(emu)
    assert sent["messages"] == [
        {"role": "system", "content": "You review python code. Be kind."},
        {"role": "user", "content": [{"type": "text", "text": "Review:\nprint(1)"}]},
        {"role": "user", "content": "And mind the style."},
    ]
    assert sent["temperature"] == 0.2  # the template's parameters apply
    assert sent["max_tokens"] == 300
    assert "prompt" not in sent  # a gateway field: never sent upstream


def test_the_request_s_own_parameters_win_and_the_template_can_name_the_model(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    create(gw)
    with sdk(gw) as client:
        client.chat.completions.create(
            model="fast",
            messages=[],
            temperature=1.5,
            extra_body={"prompt": {"id": "code-review", "version": 1, "variables": VARIABLES}},
        )
    assert last_sent(emu)["temperature"] == 1.5
    assert len(last_sent(emu)["messages"]) == 2
    # Without a model in the request (a plain HTTP client), the template's is used.
    body = {"prompt": {"id": "code-review", "label": "production", "variables": VARIABLES}}
    resp = api(gw, "POST", "/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-prompt"] == "code-review@1"
    assert last_sent(emu)["model"] == "gpt-4o-mini"  # the deployment of "fast"


def test_versions_are_immutable_and_labels_choose_between_them(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    create(gw)
    second = {**REVIEW["template"], "temperature": 0.7}
    second["messages"] = [{"role": "system", "content": "v2 reviews {{ language }}: {{ code }}"}]
    resp = api(
        gw,
        "POST",
        "/v1/prompts/code-review/versions",
        json={"template": second, "variables": REVIEW["variables"], "labels": ["staging"]},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == 2
    assert resp.json()["labels"] == {"production": 1, "staging": 2}

    def served(**ref: Any) -> str:
        with sdk(gw) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="fast",
                messages=[],
                extra_body={"prompt": {"id": "code-review", "variables": VARIABLES, **ref}},
            )
        return raw.headers["x-gateway-prompt"]

    assert served() == "code-review@1"  # the production label
    assert served(label="staging") == "code-review@2"
    assert served(version=2) == "code-review@2"
    assert last_sent(emu)["messages"][0]["content"] == "v2 reviews python: print(1)"
    moved = api(gw, "PUT", "/ai/prompts/code-review/labels/production", json={"version": 2})
    assert moved.status_code == 200, moved.text
    assert moved.json()["labels"] == {"production": 2, "staging": 2}
    assert served() == "code-review@2"
    assert (
        api(gw, "GET", "/v1/prompts/code-review/versions/1").json()["template"]
        == (REVIEW["template"])
    )
    listed = api(gw, "GET", "/v1/prompts").json()["data"]
    assert [(p["id"], p["latest_version"]) for p in listed] == [("code-review", 2)]
    shown = api(gw, "GET", "/v1/prompts/code-review").json()
    assert shown["version"]["version"] == 2


def test_render_returns_the_request_without_calling_a_model(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    create(gw)
    resp = api(gw, "POST", "/v1/prompts/code-review/render", json={"variables": VARIABLES})
    assert resp.status_code == 200, resp.text
    rendered = resp.json()
    assert (rendered["id"], rendered["version"]) == ("code-review", 1)
    assert rendered["request"]["model"] == "fast"
    assert rendered["request"]["messages"][0]["content"] == "You review python code. Be kind."
    assert not [r for r in emu.requests() if r["path"].endswith("/chat/completions")]


def error_of(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    """The OpenAI-style error: the SDK keeps the body's `error` object."""
    error = exc.value.response.json()["error"]
    assert isinstance(error, dict)
    assert exc.value.body == error
    return error


@pytest.mark.parametrize(
    ("ref", "status", "param", "words"),
    [
        ({"id": "nope"}, 404, "prompt.id", "No prompt template 'nope'"),
        ({"id": "code-review", "version": 9}, 404, "prompt.version", "no version 9"),
        ({"id": "code-review", "label": "canary"}, 404, "prompt.label", "no label 'canary'"),
        (
            {"id": "code-review", "variables": {"language": "python"}},
            400,
            "prompt.variables.code",
            "Variable 'code'",
        ),
        (
            {"id": "code-review", "variables": {**VARIABLES, "language": "cobol"}},
            400,
            "prompt.variables.language",
            "'cobol' is not one of",
        ),
        (
            {"id": "code-review", "variables": {**VARIABLES, "extra": 1}},
            400,
            "prompt.variables.extra",
            "Variable 'extra'",
        ),
    ],
)
def test_unknown_templates_and_bad_variables_are_openai_errors(
    gw: GatewayServer,
    emu: EmulatorServer,
    ref: dict[str, Any],
    status: int,
    param: str,
    words: str,
) -> None:
    create(gw)
    with sdk(gw) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="fast", messages=[], extra_body={"prompt": {"variables": VARIABLES, **ref}}
        )
    assert caught.value.status_code == status
    error = error_of(caught)
    assert error["param"] == param
    assert words in error["message"]
    assert not [r for r in emu.requests() if r["path"].endswith("/chat/completions")]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "refused by the template sandbox"),
        ("{{ cycler.__init__.__globals__ }}", "refused by the template sandbox"),
        ("{{ lipsum() }}", "'lipsum' is undefined"),  # no globals but range
        ("Hello {{ nobody }}", "'nobody' is undefined; pass it in prompt.variables"),
        ("{{ 'x' * 100000000 }}", "refused by the template sandbox"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_a_template_that_fails_to_render_is_a_400_never_a_500(
    gw: GatewayServer, emu: EmulatorServer, content: str, words: str
) -> None:
    template = {"messages": [{"role": "system", "content": content}]}
    create(gw, {"id": "bad", "template": template})
    with sdk(gw) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="fast", messages=[], extra_body={"prompt": {"id": "bad"}}
        )
    error = error_of(caught)
    assert words in error["message"]
    assert "Traceback" not in error["message"]
    rendered = api(gw, "POST", "/v1/prompts/bad/render", json={})
    assert rendered.status_code == 400
    assert words in rendered.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"id": "x", "template": {"messages": [{"role": "user", "content": "{{ x "}]}},
            "template.messages[0].content",
        ),
        ({"id": "x", "template": {"messages": []}}, "template.messages"),
        (
            {
                "id": "x",
                "template": {"messages": [{"role": "user", "content": "a"}], "stream": True},
            },
            "template.stream",
        ),
        (
            {
                "id": "x",
                "template": {"messages": [{"role": "user", "content": "a"}]},
                "variables": {"type": "no-such-type"},
            },
            "variables",
        ),
        ({"id": "bad id!", "template": {"messages": [{"role": "user", "content": "a"}]}}, "id"),
    ],
)
def test_a_template_that_cannot_be_used_is_refused_when_created(
    gw: GatewayServer, body: dict[str, Any], param: str
) -> None:
    resp = api(gw, "POST", "/v1/prompts", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_admin_errors(gw: GatewayServer) -> None:
    create(gw)
    assert api(gw, "POST", "/v1/prompts", json=REVIEW).status_code == 409
    assert api(gw, "GET", "/v1/prompts/nope").status_code == 404
    moved = api(gw, "PUT", "/v1/prompts/code-review/labels/production", json={"version": 5})
    assert moved.status_code == 404
    assert moved.json()["error"]["code"] == "prompt_version_not_found"
    plain = httpx.get(f"{gw.url}/v1/prompts", headers={"Authorization": "Bearer sk-nope"})
    assert plain.status_code == 401


def test_the_version_used_is_in_the_usage_record_and_the_span(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = config_from_yaml(tmp_path, emulator_yaml(emu), {"master_key": MASTER})
    gw = GatewayServer(config, tracing=Tracing(provider))
    try:
        create(gw)
        exporter.clear()
        with sdk(gw) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="fast",
                messages=[],
                extra_body={"prompt": {"id": "code-review", "variables": VARIABLES}},
            )
        request_id = raw.headers["x-gateway-request-id"]
        deadline = time.monotonic() + 10
        while True:
            rows = api(
                gw,
                "GET",
                "/ai/analytics/requests",
                params={"start": "1h", "request_id": request_id},
            ).json()["data"]
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (rows[0]["prompt_id"], rows[0]["prompt_version"]) == ("code-review", 1)
        chat = [
            s
            for s in exporter.get_finished_spans()
            if s.kind is SpanKind.SERVER
            and (s.attributes or {}).get("http.route", "").endswith("/chat/completions")
        ]
        assert chat
        attributes = chat[0].attributes or {}
        assert attributes["ai_gateway.prompt.id"] == "code-review"
        assert attributes["ai_gateway.prompt.version"] == 1
    finally:
        gw.stop()
        provider.shutdown()


def test_a_request_without_a_prompt_is_unchanged(gw: GatewayServer, emu: EmulatorServer) -> None:
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="fast", messages=[{"role": "user", "content": "plain"}]
        )
    assert "x-gateway-prompt" not in raw.headers
    assert last_sent(emu)["messages"] == [{"role": "user", "content": "plain"}]


def test_the_cache_keys_on_the_template_version(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu, "cache: {enabled: true}"), master_key=MASTER)
    create(gw)

    def status() -> tuple[str, str]:
        resp = api(
            gw,
            "POST",
            "/v1/chat/completions",
            json={
                "model": "fast",
                "messages": [],
                "prompt": {"id": "code-review", "variables": VARIABLES},
            },
        )
        assert resp.status_code == 200, resp.text
        return resp.headers["x-gateway-cache"], resp.headers["x-gateway-prompt"]

    assert status() == ("miss", "code-review@1")
    assert status() == ("hit", "code-review@1")
    # The same content as version 2: another version, another entry.
    added = api(
        gw,
        "POST",
        "/v1/prompts/code-review/versions",
        json={
            "template": REVIEW["template"],
            "variables": REVIEW["variables"],
            "labels": ["production"],
        },
    )
    assert added.status_code == 201
    assert status() == ("miss", "code-review@2")
