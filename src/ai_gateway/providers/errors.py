"""A flat table from an upstream HTTP status to the gateway error the client sees.

Each adapter extracts the provider's own message from its error body and calls `upstream_error`;
the status decision is made here, once, for all providers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ai_gateway.errors import (
    GatewayError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamPayloadTooLargeError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ai_gateway.providers.http import retry_after_seconds
from ai_gateway.redaction import scrub
from ai_gateway.routing.deployments import Deployment

DEFAULT_RETRY_AFTER_S = 1


def upstream_error(
    deployment: Deployment,
    status: int,
    message: str | None,
    headers: Mapping[str, str],
    *,
    param: str | None = None,
) -> GatewayError:
    where = f"{deployment.provider}, deployment '{deployment.id}'"
    detail = scrub(message or "", (deployment.api_key,))[:2000]
    if param is not None:  # upstream text too: it could echo a key
        param = scrub(param, (deployment.api_key,))[:200]
    said = f": {detail}" if detail else "."
    if status in (401, 403):
        return UpstreamAuthError(
            f"The upstream provider ({where}) rejected the gateway's credentials (HTTP {status}). "
            "The gateway's provider API key is missing, wrong or lacks access; "
            "an operator must fix the gateway's configuration."
        )
    if status == 404:
        if deployment.from_config:
            return UpstreamError(
                f"The upstream provider ({where}) does not know the configured upstream model "
                f"'{deployment.model}' (HTTP 404); an operator must fix the gateway's "
                "configuration."
            )
        return UpstreamNotFoundError(
            f"The upstream provider ({deployment.provider}) does not know the model "
            f"'{deployment.model}'{said}",
            param="model",
        )
    if status in (408, 504):
        return UpstreamTimeoutError(f"The upstream provider ({where}) timed out (HTTP {status}).")
    if status == 413:
        return UpstreamPayloadTooLargeError(
            f"The upstream provider ({where}) says the request is too large{said}"
        )
    if status == 429:
        wait = retry_after_seconds(headers)
        seconds = DEFAULT_RETRY_AFTER_S if wait is None else max(1, math.ceil(wait))
        return UpstreamRateLimitError(
            f"The upstream provider ({where}) is rate limiting requests; "
            f"retry after {seconds}s{said}",
            headers={"Retry-After": str(seconds)},
        )
    if 400 <= status < 500:
        return UpstreamBadRequestError(
            f"The upstream provider ({where}) rejected the request (HTTP {status}){said}",
            param=param,
        )
    if status in (503, 529):
        wait = retry_after_seconds(headers)
        extra = {"Retry-After": str(max(1, math.ceil(wait)))} if wait is not None else {}
        return UpstreamUnavailableError(
            f"The upstream provider ({where}) is overloaded or unavailable (HTTP {status}){said}",
            headers=extra,
        )
    return UpstreamError(f"The upstream provider ({where}) failed with HTTP {status}{said}")
