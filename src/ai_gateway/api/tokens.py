"""POST /ai/tokens/count (and /v1/tokens/count)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.routing.deployments import DeploymentTable
from ai_gateway.schemas.tokens import TokenCountRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.usage.tokens import TokenCounter


class TokensAPI:
    def __init__(
        self, deployments: DeploymentTable, counter: TokenCounter, limit: BodyLimit
    ) -> None:
        self._deployments = deployments
        self._counter = counter
        self._limit = limit

    async def count(self, request: Request) -> Response:
        body = await read_json(request, self._limit)
        parsed = parse_body(TokenCountRequest, body)
        deployment = self._deployments.resolve(parsed.model)[0]
        provider, upstream = deployment.provider, deployment.model
        if parsed.messages is not None:
            tools = [t.model_dump(exclude_none=True) for t in parsed.tools or ()]
            count = self._counter.count_messages(provider, upstream, body["messages"], tools)
        else:
            texts = [parsed.input] if isinstance(parsed.input, str) else list(parsed.input or ())
            count = self._counter.count_text(provider, upstream, texts)
        return JSONResponse(
            {
                "object": "token_count",
                "model": parsed.model,
                "provider": provider,
                "upstream_model": upstream,
                "tokens": count.tokens,
                "exact": count.exact,
                "method": count.method,
            }
        )
