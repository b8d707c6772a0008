"""The exact-path dispatch in front of Starlette's router picks the route Starlette would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.testclient import TestClient

from ai_gateway.api.paths import ExactPathRouter, exact_routes
from ai_gateway.app import create_app
from ai_gateway.settings import load_config


def endpoint(name: str) -> Any:
    async def respond(request: Request) -> Response:
        return PlainTextResponse(name)

    return respond


def starlettes_choice(routes: list[Any], path: str, method: str) -> Any:
    scope = {"type": "http", "path": path, "root_path": "", "method": method}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def test_only_unambiguous_parameterless_paths_are_looked_up() -> None:
    routes = [
        Route("/items/{name:path}", endpoint("pattern"), methods=["GET"]),
        Route("/items/special", endpoint("shadowed"), methods=["GET"]),  # the pattern wins
        Route("/twice", endpoint("get"), methods=["GET"]),
        Route("/twice", endpoint("post"), methods=["POST"]),  # two routes: left to the loop
        Route("/plain", endpoint("plain"), methods=["POST"]),
    ]
    exact = exact_routes(routes)
    assert set(exact) == {"/plain"}
    assert exact["/plain"][0] is routes[4]


def test_every_path_of_the_gateway_goes_where_starlette_would_send_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", "sk-master-paths-1234")  # admin routes too
    app = create_app(load_config())
    router = app.router
    assert isinstance(router, ExactPathRouter)
    exact = exact_routes(router.routes)
    assert "/v1/chat/completions" in exact
    assert "/ai/chat/completions" in exact
    for path, (route, methods) in exact.items():
        for method in methods:
            assert starlettes_choice(router.routes, path, method) is route, (path, method)


def test_requests_are_answered_alike_through_the_dict_and_the_loop() -> None:
    routes = [
        Route("/items/{name}", endpoint("item"), methods=["GET"]),
        Route("/plain", endpoint("plain"), methods=["POST"]),
    ]
    client = TestClient(ExactPathRouter(routes))
    assert client.post("/plain").text == "plain"  # the dict
    assert client.get("/items/x").text == "item"  # the loop
    wrong = client.get("/plain")  # a method the route does not allow: the loop's 405
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert client.get("/nowhere").status_code == 404
