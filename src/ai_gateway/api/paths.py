"""Starlette's router, with a dictionary in front for paths without parameters.

Starlette tries each route's regular expression in turn, so the cost of finding a route grows
with the table; `/v1/chat/completions`, the path every OpenAI SDK calls, is not first in it.
`ExactPathRouter`
looks such a path up in a dict first and hands the request to the route Starlette would have
chosen; everything else (a method the route does not allow, paths with parameters, slashes to
redirect, 404s, lifespan) goes through Starlette's loop unchanged.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Route, Router
from starlette.types import Receive, Scope, Send


class ExactPathRouter(Router):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exact = exact_routes(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (Behind a root path, the path to match is not scope["path"]: the loop handles that.)
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self._exact.get(scope["path"])
            if found is not None and scope["method"] in found[1]:
                route = found[0]
                scope.setdefault("router", self)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = dict(scope.get("path_params", {}))
                await route.app(scope, receive, send)
                return
        await super().app(scope, receive, send)


def exact_routes(routes: list[Any]) -> dict[str, tuple[Route, frozenset[str]]]:
    """Each parameterless path with its route and methods, when Starlette's loop would pick that
    route for it whatever the method: no earlier route matches the path, and no other route has
    it."""
    found: dict[str, tuple[Route, frozenset[str]]] = {}
    taken: set[str] = set()
    for index, route in enumerate(routes):
        if not isinstance(route, Route) or route.param_convertors or not route.methods:
            continue
        path = route.path
        if path in taken:
            found.pop(path, None)  # a second route for the path: leave it to the loop
            continue
        taken.add(path)
        probe = {"type": "http", "path": path, "root_path": "", "method": "GET"}
        if any(earlier.matches(probe)[0] is not Match.NONE for earlier in routes[:index]):
            continue
        found[path] = (route, frozenset(route.methods))
    return found
