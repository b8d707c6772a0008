"""The master key check: installed only when AI_GATEWAY_MASTER_KEY is set (off costs nothing)."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ai_gateway.errors import AuthenticationError

PROTECTED_PREFIXES = ("/ai/", "/v1/")


class MasterKeyAuth:
    def __init__(self, app: ASGIApp, master_key: str) -> None:
        self.app = app
        self._expected = master_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                supplied = value
                break
        if not supplied:
            error = AuthenticationError(
                "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        elif supplied[:7].lower() == b"bearer " and hmac.compare_digest(
            supplied[7:].strip(), self._expected
        ):
            await self.app(scope, receive, send)
            return
        else:
            error = AuthenticationError("Invalid API key.")
        body = error.to_json()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="ai-gateway"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
