"""GET /health (liveness), GET /health/ready (each dependency's state), GET /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import JSONResponse
from ai_gateway.observability.health import CheckResult, ReadinessCheck
from ai_gateway.observability.metrics import Metrics


class HealthAPI:
    def __init__(self, checks: list[ReadinessCheck], metrics: Metrics) -> None:
        self._checks = checks
        self._metrics = metrics
        self._ok = JSONResponse({"status": "ok"}).body

    async def live(self, request: Request) -> Response:
        return Response(self._ok, media_type="application/json")

    async def ready(self, request: Request) -> Response:
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
