"""The floor: a minimal pass-through proxy on the gateway's stack.

Starlette on uvicorn (uvloop, httptools, one worker, no access log) forwarding the body of
``POST /v1/chat/completions`` to the upstream through one shared ``aiohttp.ClientSession``
(keep-alive pool) and returning the upstream's status and bytes unchanged. Whatever the gateway
costs beyond this is the gateway's own work.

Run: ``python -m bench.passthrough --port 8001 --upstream http://127.0.0.1:9000/v1``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FORWARDED_HEADERS = ("content-type", "authorization")


def create_app(upstream: str, pool_size: int = 256) -> Starlette:
    """Build the proxy for ``upstream`` (an OpenAI-style base URL ending in ``/v1``)."""
    target = upstream.rstrip("/") + "/chat/completions"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=pool_size, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            app.state.session = session
            yield

    async def chat_completions(request: Request) -> Response:
        session: aiohttp.ClientSession = request.app.state.session
        body = await request.body()
        headers = {k: v for k in FORWARDED_HEADERS if (v := request.headers.get(k)) is not None}
        async with session.post(target, data=body, headers=headers) as upstream_response:
            content = await upstream_response.read()
            media_type = upstream_response.headers.get("content-type", "application/json")
            return Response(content, status_code=upstream_response.status, media_type=media_type)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Minimal pass-through proxy (the floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000/v1")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
