"""GET /dashboard: the analytics dashboard, a static page shipped in ai_gateway/data/dashboard
(index.html, style.css, and two ES modules: app.js loads the data, charts.js draws it).

The page itself is public (it holds no data); its script calls the /ai/analytics API with the
master key the operator types in. Everything it needs is served from here: no CDN, no external
fonts, and a Content-Security-Policy that forbids loading anything from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.errors import NotFoundError

_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str


class DashboardAPI:
    def __init__(self) -> None:
        folder = resources.files("ai_gateway") / "data" / "dashboard"
        self._assets = {
            name: _Asset((folder / name).read_bytes(), media_type)
            for name, media_type in _FILES.items()
        }

    async def page(self, request: Request) -> Response:
        return self._serve("index.html")

    async def asset(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in self._assets or name == "index.html":
            raise NotFoundError(
                f"There is no dashboard file {name[:60]!r}.", code="route_not_found"
            )
        return self._serve(name)

    def _serve(self, name: str) -> Response:
        asset = self._assets[name]
        return Response(asset.body, media_type=asset.media_type, headers=_HEADERS)
