"""GET /health (liveness), GET /health/ready (each dependency's state), GET /metrics.

During a graceful drain (`streaming/drain.py`) readiness answers 503 `draining` at once, without
probing anything, so that load balancers stop sending new requests; liveness stays 200 (the
process is healthy, restarting it would cut the requests it is finishing).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import JSONResponse
from ai_gateway.observability.health import CheckResult, ReadinessCheck
from ai_gateway.observability.metrics import Metrics
from ai_gateway.streaming.drain import Drain


class HealthAPI:
    def __init__(
        self, checks: list[ReadinessCheck], metrics: Metrics, drain: Drain | None = None
    ) -> None:
        self._checks = checks
        self._metrics = metrics
        self._drain = drain
        self._ok = JSONResponse({"status": "ok"}).body

    async def live(self, request: Request) -> Response:
        return Response(self._ok, media_type="application/json")

    async def ready(self, request: Request) -> Response:
        drain = self._drain
        if drain is not None and drain.draining:
            body = {
                "status": "draining",
                "detail": "shutting down: finishing the requests in flight "
                f"(at most {drain.timeout_s:g} s, drain_timeout_s), taking no new ones",
                "open_streams": drain.open_streams,
            }
            return JSONResponse(body, status_code=503)
        report: dict[str, dict[str, object]] = {}
        ready = True
        for check in self._checks:
            try:
                result = await check.probe()
            except Exception as exc:
                result = CheckResult(False, f"probe failed: {type(exc).__name__}")
            report[check.name] = {
                "status": "ok" if result.ok else "down",
                "required": check.required,
                "detail": result.detail,
            }
            if check.required and not result.ok:
                ready = False
        body = {"status": "ready" if ready else "not_ready", "checks": report}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(self._metrics.render(), media_type=CONTENT_TYPE_LATEST)
