"""The analytics, feedback and dashboard routes' part of GET /openapi.json.

`build_openapi` adds `ANALYTICS_SCHEMAS` to its component models and merges `analytics_paths()`
into its paths.
"""

from __future__ import annotations

from typing import Any

from ai_gateway.api.analytics import FEEDBACK_GROUPS, USAGE_GROUPS
from ai_gateway.api.analytics_query import MAX_LIMIT
from ai_gateway.schemas.analytics import ANALYTICS_SCHEMAS

__all__ = ["ANALYTICS_SCHEMAS", "analytics_paths"]

_REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
_TIME = (
    "An ISO-8601 timestamp (UTC when it has no offset) or a time relative to now: "
    "`30m`, `24h`, `7d`, `2w`, `now`."
)


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=name)}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _errors(*codes: str) -> dict[str, Any]:
    text = {
        "400": "A query parameter or body field is invalid; the message and `param` name it.",
        "401": "Missing or wrong master key (only when the gateway has one).",
        "404": "Unknown request id (feedback), or analytics are disabled on this gateway.",
        "503": "The analytics store is unavailable; retry shortly.",
    }
    return {code: {"description": text[code], "content": _json("ErrorResponse")} for code in codes}


def _report(name: str, summary: str, extra: list[dict[str, Any]], schema: str) -> dict[str, Any]:
    params = [
        _query(
            "start",
            f"Start of the range (inclusive). {_TIME} Default: 24h before end.",
            {"type": "string"},
        ),
        _query("end", f"End of the range (exclusive). {_TIME} Default: now.", {"type": "string"}),
        *extra,
    ]
    return {
        "get": {
            "operationId": f"analytics_{name}",
            "security": _SECURITY,
            "summary": summary,
            "description": "Before querying, the gateway flushes its own pending usage records, "
            "so requests it finished earlier are included (`complete` says whether that worked).",
            "parameters": params,
            "responses": {
                "200": {"description": summary, "content": _json(schema)},
                **_errors("400", "401", "404", "503"),
            },
        }
    }


def analytics_paths() -> dict[str, Any]:
    usage_group = _query("group_by", "Default: model.", {"enum": list(USAGE_GROUPS)})
    feedback_group = _query("group_by", "Default: model.", {"enum": list(FEEDBACK_GROUPS)})
    limit = _query(
        "limit",
        "Most recent errors listed (default 50).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    )
    bucket = _query(
        "bucket",
        "Bucket width: seconds or a duration (`5m`, `1h`, `1d`); default chosen for about 120 "
        "points. At most 1000 buckets per range.",
        {"type": "string"},
    )
    page = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/ai/analytics/usage": _report(
            "usage",
            "Requests, errors, tokens, cost, and response-cache hit rate and savings by group, "
            "with totals",
            [usage_group],
            "UsageReport",
        ),
        "/ai/analytics/models": _report(
            "models",
            "Latency, TTFT, error rate and cost per model and deployment",
            [],
            "ModelsReport",
        ),
        "/ai/analytics/errors": _report(
            "errors", "Recent failed requests and counts by error type", [limit], "ErrorsReport"
        ),
        "/ai/analytics/requests": _report(
            "requests",
            "The usage records of one request id (the gateway's) or client request id, with "
            "their cache status and savings",
            [
                _query(
                    "request_id",
                    "The gateway's id (the x-gateway-request-id of a response). Give this or "
                    "client_request_id.",
                    {"type": "string"},
                ),
                _query(
                    "client_request_id",
                    "The x-request-id a client sent: every request sent with it.",
                    {"type": "string"},
                ),
                _query(
                    "limit",
                    "Most recent records listed (default 50).",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                ),
            ],
            "RequestsReport",
        ),
        "/ai/analytics/feedback": _report(
            "feedback",
            "Feedback scores by group, with totals",
            [feedback_group],
            "FeedbackReport",
        ),
        "/ai/analytics/prompts": _report(
            "prompts",
            "Per prompt template version: requests, tokens, cost, latency, error rate and the "
            "feedback on its requests, to compare versions",
            [
                _query(
                    "prompt_id",
                    "One template's versions only (default: every template).",
                    {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                )
            ],
            "PromptsReport",
        ),
        "/ai/analytics/timeseries": _report(
            "timeseries",
            "Requests, errors, tokens, cost, latency, cache hits and savings per time bucket and "
            "model",
            [bucket],
            "TimeseriesReport",
        ),
        "/ai/feedback": {
            "post": {
                "operationId": "create_feedback",
                "security": _SECURITY,
                "summary": "Record feedback on a request the gateway served",
                "requestBody": {"required": True, "content": _json("FeedbackRequest")},
                "responses": {
                    "201": {"description": "The stored feedback", "content": _json("Feedback")},
                    **_errors("400", "401", "404", "503"),
                    "413": {
                        "description": "The body is larger than the feedback endpoint accepts.",
                        "content": _json("ErrorResponse"),
                    },
                },
            }
        },
        "/dashboard": {
            "get": {
                "operationId": "dashboard",
                "summary": "The analytics dashboard (HTML; it asks for the master key itself)",
                "responses": {"200": {"description": "The page", "content": page}},
            }
        },
    }
