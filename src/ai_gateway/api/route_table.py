"""The route table's machinery: what one route declares, and what the middleware reads per request.

`api/routes.py` declares the gateway's routes with it. A `RouteEntry` is the one place that says
a route's path, methods, handler, who may call it and its metrics label; `RouteTable` turns the
entries into Starlette routes and answers, for a request's path, the facts the middleware needs
(`MatchedRoute`), computed once when the table is built.

`RequestContextMiddleware` matches each request once (a dict lookup for a path without
parameters) and puts the answer in the ASGI scope under `ROUTE_KEY`; the auth middleware reads
it from there.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute, compile_path
from starlette.websockets import WebSocket

Endpoint = Callable[[Request], Awaitable[Response]]
SocketEndpoint = Callable[[WebSocket], Awaitable[None]]

# The API lives under both prefixes, alike: /v1 for OpenAI SDKs, /ai for the DevMentor design.
API_PREFIXES = ("/ai", "/v1")
# A path no route matches still needs a credential under these prefixes: a caller without one
# learns nothing about which routes exist (and a WebSocket there is refused before it opens).
_GUARDED_PREFIXES = ("/ai/", "/v1/", "/admin/")
UNMATCHED = "unmatched"
ROUTE_KEY = "ai_gateway.route"
# The API dialect of a route's errors and credentials: OpenAI's (`Authorization: Bearer`, the
# OpenAI error JSON), or Anthropic's (also `x-api-key`, the Anthropic error JSON: api/messages*).
OPENAI, ANTHROPIC = "openai", "anthropic"


class Access(Enum):
    """Who may call a route (enforced only when authentication is on)."""

    PUBLIC = "public"  # no credential
    CALLER = "caller"  # any valid credential
    ADMIN = "admin"  # the master key


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One route. `path` is a Starlette path (`/models/{model_id:path}`); with `api` true it is
    relative and the route exists under each of `API_PREFIXES`. `label` is the `route` label of
    its metrics and access log line: a fixed string, so clients cannot create label values.
    `traced`: whether its requests get a server span (probes and scrapes would drown the rest).
    `websocket`: a WebSocket route (no methods; `endpoint` takes a `WebSocket`). `dialect`: the
    API whose error shape and credential headers the route uses (`OPENAI`, `ANTHROPIC`)."""

    path: str
    methods: tuple[str, ...]
    endpoint: Endpoint | SocketEndpoint
    access: Access
    label: str
    api: bool = False
    traced: bool = True
    websocket: bool = False
    dialect: str = OPENAI

    def paths(self) -> tuple[str, ...]:
        return tuple(prefix + self.path for prefix in API_PREFIXES) if self.api else (self.path,)


@dataclass(frozen=True, slots=True)
class MatchedRoute:
    """What the middleware needs to know about a request's route. `template` is the route's path
    without parameter types (`/v1/models/{model_id}`), the span's `http.route`; None when no
    route matched. `websocket`: the route is a WebSocket's (which may authenticate after it
    opens, api/ws.py). `dialect`: as the route entry's."""

    label: str
    access: Access
    template: str | None
    traced: bool = True
    websocket: bool = False
    dialect: str = OPENAI


_UNMATCHED_PUBLIC = MatchedRoute(UNMATCHED, Access.PUBLIC, None)
_UNMATCHED_GUARDED = MatchedRoute(UNMATCHED, Access.CALLER, None)


class RouteTable:
    """The gateway's routes, built once. `match` costs a dict lookup for a parameterless path;
    paths with parameters (a few, none on the chat or embeddings path) try a pattern each."""

    def __init__(self, entries: Iterable[RouteEntry]) -> None:
        self.entries = tuple(entries)
        self._exact: dict[str, MatchedRoute] = {}
        self._patterns: dict[str, tuple[re.Pattern[str], MatchedRoute]] = {}
        # API routes first, /ai before /v1 (the order Starlette's loop tries them in).
        api = [(prefix, e) for prefix in API_PREFIXES for e in self.entries if e.api]
        plain = [("", e) for e in self.entries if not e.api]
        self.routes: list[BaseRoute] = []
        for prefix, entry in api + plain:
            path = prefix + entry.path
            if entry.websocket:
                self.routes.append(WebSocketRoute(path, entry.endpoint))
            else:
                self.routes.append(Route(path, entry.endpoint, methods=list(entry.methods)))
            regex, template, convertors = compile_path(path)
            matched = MatchedRoute(
                entry.label, entry.access, template, entry.traced, entry.websocket, entry.dialect
            )
            known = self._exact.get(path) or self._patterns.get(path, (None, None))[1]
            if known is not None:
                if (known.label, known.access, known.traced) != (
                    matched.label,
                    matched.access,
                    matched.traced,
                ):
                    raise ValueError(f"routes for {path} disagree on their label or access")
                # A path served over HTTP and as a WebSocket (/v1/responses): its sockets
                # authenticate at the upgrade, as its HTTP requests do, not with a message.
                matched = replace(matched, websocket=known.websocket and matched.websocket)
            if convertors:
                self._patterns[path] = (regex, matched)
                continue
            for earlier, _ in self._patterns.values():
                if earlier.match(path):  # Starlette's loop would never reach this route
                    raise ValueError(f"{path} is shadowed by {earlier.pattern}")
            self._exact[path] = matched

    def match(self, path: str) -> MatchedRoute:
        found = self._exact.get(path)
        if found is not None:
            return found
        for regex, matched in self._patterns.values():
            if regex.match(path):
                return matched
        return _UNMATCHED_GUARDED if path.startswith(_GUARDED_PREFIXES) else _UNMATCHED_PUBLIC


def matched_route(scope: MutableMapping[str, Any]) -> MatchedRoute | None:
    """The route `RequestContextMiddleware` matched for this request, if it saw the request."""
    route = scope.get(ROUTE_KEY)
    return route if isinstance(route, MatchedRoute) else None
