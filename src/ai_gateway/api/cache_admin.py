"""DELETE /admin/cache: empty the response cache (an admin route).

    DELETE /admin/cache                    every entry (and the semantic index)
    DELETE /admin/cache?namespace=N        the entries stored under the client namespace N
    DELETE /admin/cache?key=K              one entry (K: an `x-gateway-cache-key`)

Answers `{"deleted": <entries removed>}`; 503 when the cache's store does not answer.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import JSONResponse
from ai_gateway.errors import InvalidRequestError

_NAMESPACE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")

# (namespace, digest) -> entries removed
Clear = Callable[[str | None, str | None], Awaitable[int]]


class CacheAdminAPI:
    def __init__(self, clear: Clear) -> None:
        self._clear = clear

    async def delete(self, request: Request) -> Response:
        params = request.query_params
        unknown = set(params) - {"namespace", "key"}
        if unknown:
            raise InvalidRequestError(
                f"Unknown query parameter {sorted(unknown)[0]!r}: use namespace= or key=.",
                param=sorted(unknown)[0],
            )
        namespace = params.get("namespace")
        digest = params.get("key")
        if namespace is not None and not _NAMESPACE.fullmatch(namespace):
            raise InvalidRequestError(
                "namespace must be 1-64 characters of A-Z a-z 0-9 . _ : -", param="namespace"
            )
        if digest is not None and not _DIGEST.fullmatch(digest):
            raise InvalidRequestError(
                "key must be an x-gateway-cache-key: 64 lowercase hexadecimal characters.",
                param="key",
            )
        deleted = await self._clear(namespace, digest)
        return JSONResponse({"deleted": deleted})
