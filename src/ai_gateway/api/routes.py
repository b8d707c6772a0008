"""The gateway's route table: every route, with its path, methods, handler, who may call it and
its metrics label, in one list. `create_app` mounts the Starlette routes built from it, and the
request-context and auth middleware read their answers from it (`api/route_table.py`).

Adding an endpoint is one entry here. With `api=True` it exists under /ai and /v1 alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_gateway.api.admin import AdminAPI
from ai_gateway.api.analytics_routes import AnalyticsEndpoints
from ai_gateway.api.cache_admin import CacheAdminAPI
from ai_gateway.api.chains import ChainsAPI
from ai_gateway.api.chat import CompletionsAPI
from ai_gateway.api.code import CodeAPI
from ai_gateway.api.dashboard import DashboardAPI
from ai_gateway.api.health import HealthAPI
from ai_gateway.api.messages import MessagesAPI
from ai_gateway.api.models import ModelsAPI
from ai_gateway.api.notifications import NotificationsAPI
from ai_gateway.api.prompts import PromptsAPI
from ai_gateway.api.responses import ResponsesAPI
from ai_gateway.api.responses_ws import ResponsesSocketAPI
from ai_gateway.api.route_table import ANTHROPIC, Access, Endpoint, RouteEntry, RouteTable
from ai_gateway.api.tokens import TokensAPI
from ai_gateway.api.vector_stores import VectorStoresAPI
from ai_gateway.api.ws import WebSocketAPI

PUBLIC, CALLER, ADMIN = Access.PUBLIC, Access.CALLER, Access.ADMIN
GET, POST, PUT, DELETE = ("GET",), ("POST",), ("PUT",), ("DELETE",)


@dataclass(frozen=True)
class Handlers:
    """The objects whose methods serve the routes; `admin` is None without authentication."""

    completions: CompletionsAPI
    models: ModelsAPI
    tokens: TokensAPI
    health: HealthAPI
    openapi: Endpoint
    analytics: AnalyticsEndpoints
    dashboard: DashboardAPI
    admin: AdminAPI | None
    cache_admin: CacheAdminAPI
    prompts: PromptsAPI
    code: CodeAPI
    chains: ChainsAPI
    vector_stores: VectorStoresAPI
    ws: WebSocketAPI
    notifications: NotificationsAPI
    responses: ResponsesAPI
    responses_ws: ResponsesSocketAPI
    messages: MessagesAPI | None = None  # the Anthropic Messages API


def gateway_routes(h: Handlers) -> RouteTable:
    E = RouteEntry
    entries = [
        E("/chat/completions", POST, h.completions.chat, CALLER, "/chat/completions", api=True),
        E("/embeddings", POST, h.completions.embeddings, CALLER, "/embeddings", api=True),
        E("/code/generate", POST, h.code.generate, CALLER, "/code/generate", api=True),
        E("/ws", (), h.ws.serve, CALLER, "/ws", api=True, websocket=True),
        E("/models", GET, h.models.list, CALLER, "/models", api=True),
        E("/models/{model_id:path}", GET, h.models.retrieve, CALLER, "/models/{id}", api=True),
        E("/tokens/count", POST, h.tokens.count, CALLER, "/tokens/count", api=True),
        *responses_entries(h.responses, h.responses_ws),
        *(messages_entries(h.messages) if h.messages is not None else ()),
        *analytics_entries(h.analytics, h.dashboard),
        *prompt_entries(h.prompts),
        *chain_entries(h.chains),
        *rag_entries(h.vector_stores),
        *(admin_entries(h.admin) if h.admin is not None else ()),
        E("/admin/cache", DELETE, h.cache_admin.delete, ADMIN, "/admin"),
        E("/admin/notifications", GET, h.notifications.list, ADMIN, "/admin"),
        E("/admin/notifications/test", POST, h.notifications.test, ADMIN, "/admin"),
        E("/health", GET, h.health.live, PUBLIC, "/health", traced=False),
        E("/health/ready", GET, h.health.ready, PUBLIC, "/health/ready", traced=False),
        E("/metrics", GET, h.health.metrics, PUBLIC, "/metrics", traced=False),
        E("/openapi.json", GET, h.openapi, PUBLIC, "/openapi.json"),
    ]
    return RouteTable(entries)


def responses_entries(r: ResponsesAPI, ws: ResponsesSocketAPI) -> list[RouteEntry]:
    """The Responses API (docs/api.md): any caller's, each seeing its own stored responses; the
    create path also takes the WebSocket mode's upgrade."""
    E = RouteEntry
    one = "/responses/{response_id}"
    label = "/responses"
    return [
        E("/responses", POST, r.create, CALLER, label, api=True),
        E("/responses", (), ws.serve, CALLER, label, api=True, websocket=True),
        E(one, GET, r.retrieve, CALLER, label, api=True),
        E(one, DELETE, r.delete, CALLER, label, api=True),
        E(one + "/cancel", POST, r.cancel, CALLER, label, api=True),
        E(one + "/input_items", GET, r.input_items, CALLER, label, api=True),
    ]


def messages_entries(m: MessagesAPI) -> list[RouteEntry]:
    """The Anthropic Messages API (docs/api.md): Anthropic's errors, `x-api-key` accepted."""
    E = RouteEntry
    create, count = "/messages", "/messages/count_tokens"
    return [
        E(create, POST, m.create, CALLER, create, api=True, dialect=ANTHROPIC),
        E(count, POST, m.count_tokens, CALLER, count, api=True, dialect=ANTHROPIC),
    ]


def analytics_entries(a: AnalyticsEndpoints, dashboard: DashboardAPI) -> list[RouteEntry]:
    """The dashboard is public (it asks for the master key itself), the reports are admin
    routes, feedback is any caller's (on their own requests)."""
    E = RouteEntry
    return [
        E("/dashboard", GET, dashboard.page, PUBLIC, "/dashboard"),
        E("/dashboard/{name:str}", GET, dashboard.asset, PUBLIC, "/dashboard"),
        E("/ai/analytics/usage", GET, a.usage, ADMIN, "/analytics"),
        E("/ai/analytics/models", GET, a.models, ADMIN, "/analytics"),
        E("/ai/analytics/errors", GET, a.errors, ADMIN, "/analytics"),
        E("/ai/analytics/requests", GET, a.requests, ADMIN, "/analytics"),
        E("/ai/analytics/feedback", GET, a.feedback, ADMIN, "/analytics"),
        E("/ai/analytics/prompts", GET, a.prompts, ADMIN, "/analytics"),
        E("/ai/analytics/timeseries", GET, a.timeseries, ADMIN, "/analytics"),
        E("/ai/feedback", POST, a.create_feedback, CALLER, "/feedback"),
    ]


def rag_entries(v: VectorStoresAPI) -> list[RouteEntry]:
    """Files and vector stores (docs/rag.md): any caller's, each seeing its own."""
    E = RouteEntry
    file = "/files/{file_id}"
    store = "/vector_stores/{store_id}"
    store_file = store + "/files/{file_id}"
    batch = store + "/file_batches/{batch_id}"
    vs = "/vector_stores"
    return [
        E("/files", POST, v.upload_file, CALLER, "/files", api=True),
        E("/files", GET, v.list_files, CALLER, "/files", api=True),
        E(file, GET, v.get_file, CALLER, "/files", api=True),
        E(file, DELETE, v.delete_file, CALLER, "/files", api=True),
        E(file + "/content", GET, v.file_content, CALLER, "/files", api=True),
        E(vs, POST, v.create_store, CALLER, vs, api=True),
        E(vs, GET, v.list_stores, CALLER, vs, api=True),
        E(store, GET, v.get_store, CALLER, vs, api=True),
        E(store, POST, v.update_store, CALLER, vs, api=True),
        E(store, DELETE, v.delete_store, CALLER, vs, api=True),
        E(store + "/files", POST, v.add_store_file, CALLER, vs, api=True),
        E(store + "/files", GET, v.list_store_files, CALLER, vs, api=True),
        E(store_file, GET, v.get_store_file, CALLER, vs, api=True),
        E(store_file, POST, v.update_store_file, CALLER, vs, api=True),
        E(store_file, DELETE, v.delete_store_file, CALLER, vs, api=True),
        E(store + "/file_batches", POST, v.create_batch, CALLER, vs, api=True),
        E(batch, GET, v.get_batch, CALLER, vs, api=True),
        E(batch + "/cancel", POST, v.cancel_batch, CALLER, vs, api=True),
        E(batch + "/files", GET, v.list_batch_files, CALLER, vs, api=True),
        E(store + "/search", POST, v.search, CALLER, vs, api=True),
    ]


def prompt_entries(p: PromptsAPI) -> list[RouteEntry]:
    """Prompt templates (docs/prompts.md): admin routes, under /ai and /v1."""
    E = RouteEntry
    one = "/prompts/{prompt_id}"
    return [
        E("/prompts", POST, p.create, ADMIN, "/prompts", api=True),
        E("/prompts", GET, p.list, ADMIN, "/prompts", api=True),
        E(one, GET, p.show, ADMIN, "/prompts", api=True),
        E(one + "/versions", POST, p.add_version, ADMIN, "/prompts", api=True),
        E(one + "/versions/{version}", GET, p.show_version, ADMIN, "/prompts", api=True),
        E(one + "/labels/{label}", PUT, p.set_label, ADMIN, "/prompts", api=True),
        E(one + "/render", POST, p.render, ADMIN, "/prompts", api=True),
    ]


def chain_entries(c: ChainsAPI) -> list[RouteEntry]:
    """Chains (docs/chains.md): admin routes, and the run for any caller; under /ai and /v1."""
    E = RouteEntry
    one = "/chains/{chain_id}"
    return [
        E("/chains", POST, c.create, ADMIN, "/chains", api=True),
        E("/chains", GET, c.list, ADMIN, "/chains", api=True),
        E(one, GET, c.show, ADMIN, "/chains", api=True),
        E(one + "/versions", POST, c.add_version, ADMIN, "/chains", api=True),
        E(one + "/labels/{label}", PUT, c.set_label, ADMIN, "/chains", api=True),
        E(one + "/run", POST, c.run, CALLER, "/chains/run", api=True),
    ]


def admin_entries(admin: AdminAPI) -> list[RouteEntry]:
    E = RouteEntry
    return [
        E("/admin/keys", POST, admin.create, ADMIN, "/admin"),
        E("/admin/keys", GET, admin.list, ADMIN, "/admin"),
        E("/admin/keys/{key_id}", GET, admin.show, ADMIN, "/admin"),
        E("/admin/keys/{key_id}", DELETE, admin.revoke, ADMIN, "/admin"),
        E("/admin/keys/{key_id}/revoke", POST, admin.revoke, ADMIN, "/admin"),
        E("/admin/keys/{key_id}/rotate", POST, admin.rotate, ADMIN, "/admin"),
        E("/admin/audit", GET, admin.audit, ADMIN, "/admin"),
    ]
