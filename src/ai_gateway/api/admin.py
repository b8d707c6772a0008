"""The admin API (master key only; the auth middleware refuses anyone else with 403; the routes
are declared in `api/routes.py`):

    POST   /admin/keys               create a key: 201 with its secret, shown this once
    GET    /admin/keys               list (?user=, ?team=, ?include_revoked=true)
    GET    /admin/keys/{id}          one key
    POST   /admin/keys/{id}/revoke   revoke (DELETE /admin/keys/{id} does the same)
    POST   /admin/keys/{id}/rotate   a new secret; the old one stops working at once
    GET    /admin/audit              the audit log (?start=, ?end=, ?action=, ?actor=, ?target=,
                                     ?limit=)

Every change is written to the audit log (actor "master", with the caller's address).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.analytics_query import parse_range
from ai_gateway.api.auth import client_ip
from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.errors import InvalidRequestError, NotFoundError, ServiceUnavailableError
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.audit import KEY_CREATED, KEY_REVOKED, KEY_ROTATED, AuditRecord
from ai_gateway.security.config import BudgetPeriod
from ai_gateway.security.keys import (
    ApiKey,
    is_key_id,
    issue_key,
    issued_view,
    new_credentials,
)
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.security import KeyRevokedError, SecurityStore, check_audit_limit

ADMIN_BODY_LIMIT = 64 * 1024


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=256)
    team: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    models: tuple[str, ...] = ()
    rps: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    budget_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    budget_period: BudgetPeriod | None = None
    guardrails: tuple[str, ...] = ()
    expires_at: datetime | None = None
    expires_in_s: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class AdminAPI:
    def __init__(
        self,
        store: SecurityStore,
        audit: Callable[[AuditRecord], None],
        forget: Callable[[str], None],
        guardrail_policies: frozenset[str],
        body: BodyLimit,
    ) -> None:
        self._body = body.at_most(ADMIN_BODY_LIMIT)
        self._store = store
        self._audit = audit
        self._forget = forget  # drop a key from the authenticator's cache
        self._policies = guardrail_policies

    def _record(self, request: Request, action: str, target: str, **details: Any) -> None:
        info = RequestInfo.from_scope(request.scope)
        self._audit(
            AuditRecord(
                actor=info.principal.actor if info.principal is not None else "master",
                action=action,
                target=target,
                source_ip=client_ip(request.scope),
                request_id=info.request_id or None,
                details=details,
            )
        )

    @staticmethod
    def _unavailable() -> ServiceUnavailableError:
        return ServiceUnavailableError(
            "The key store is unavailable; nothing was changed. Retry shortly."
        )

    @staticmethod
    def _key_id(request: Request) -> str:
        key_id = str(request.path_params["key_id"])
        if not is_key_id(key_id):
            raise NotFoundError(
                "No such key: a key id is the 12 hex characters after 'sk-gw-' (not the key).",
                code="key_not_found",
            )
        return key_id

    async def create(self, request: Request) -> Response:
        body = parse_body(KeyCreate, await read_json(request, self._body))
        unknown = [name for name in body.guardrails if name not in self._policies]
        if unknown:
            raise InvalidRequestError(
                f"Unknown guardrail policy {unknown[0]!r}: the policies are those listed under "
                "security.guardrails.policies in the configuration.",
                param="guardrails",
            )
        if body.expires_at is not None and body.expires_in_s is not None:
            raise InvalidRequestError(
                "Send expires_at or expires_in_s, not both.", param="expires_in_s"
            )
        now = datetime.now(UTC)
        expires = body.expires_at
        if body.expires_in_s is not None:
            expires = now + timedelta(seconds=body.expires_in_s)
        try:
            key, token = issue_key(
                user=body.user,
                created_at=now,
                name=body.name,
                team=body.team,
                models=body.models,
                rps=body.rps,
                burst=body.burst,
                tpm=body.tpm,
                max_concurrent=body.max_concurrent,
                budget_usd=body.budget_usd,
                budget_period=body.budget_period,
                guardrails=body.guardrails,
                expires_at=expires,
                metadata=body.metadata,
            )
        except ValueError as exc:
            raise InvalidRequestError(f"Invalid key settings: {exc}.") from None
        try:
            await self._store.create_key(key)
        except StoreUnavailableError:
            raise self._unavailable() from None
        self._record(request, KEY_CREATED, key.id, user=key.user, team=key.team)
        return JSONResponse(issued_view(key, token), status_code=201)

    async def list(self, request: Request) -> Response:
        params = request.query_params
        include = params.get("include_revoked", "false").lower()
        if include not in ("true", "false"):
            raise InvalidRequestError(
                "include_revoked must be true or false.", param="include_revoked"
            )
        try:
            keys = await self._store.list_keys(
                user=params.get("user") or None,
                team=params.get("team") or None,
                include_revoked=include == "true",
            )
        except StoreUnavailableError:
            raise self._unavailable() from None
        now = datetime.now(UTC)
        return JSONResponse({"object": "list", "data": [k.public_view(now) for k in keys]})

    async def _get(self, key_id: str) -> ApiKey:
        try:
            key = await self._store.get_key(key_id)
        except StoreUnavailableError:
            raise self._unavailable() from None
        if key is None:
            raise NotFoundError(f"No key with id {key_id}.", code="key_not_found")
        return key

    async def show(self, request: Request) -> Response:
        key = await self._get(self._key_id(request))
        return JSONResponse(key.public_view())

    async def revoke(self, request: Request) -> Response:
        key_id = self._key_id(request)
        try:
            key = await self._store.revoke_key(key_id, datetime.now(UTC))
        except StoreUnavailableError:
            raise self._unavailable() from None
        if key is None:
            raise NotFoundError(f"No key with id {key_id}.", code="key_not_found")
        self._forget(key_id)
        self._record(request, KEY_REVOKED, key_id, user=key.user)
        return JSONResponse(key.public_view())

    async def rotate(self, request: Request) -> Response:
        key_id = self._key_id(request)
        credentials = new_credentials(key_id)
        try:
            key = await self._store.rotate_key(
                key_id, credentials.salt, credentials.secret_hash, datetime.now(UTC)
            )
        except StoreUnavailableError:
            raise self._unavailable() from None
        except KeyRevokedError:
            raise InvalidRequestError(
                f"Key {key_id} is revoked: a revoked key cannot be rotated; create a new one.",
                code="key_revoked",
            ) from None
        if key is None:
            raise NotFoundError(f"No key with id {key_id}.", code="key_not_found")
        self._forget(key_id)
        self._record(request, KEY_ROTATED, key_id, user=key.user)
        return JSONResponse(issued_view(key, credentials.token))

    async def audit(self, request: Request) -> Response:
        params = request.query_params
        window = parse_range(params, datetime.now(UTC))
        try:
            limit = int(params.get("limit", "100"))
            check_audit_limit(limit)
        except ValueError as exc:
            raise InvalidRequestError(f"Invalid value for 'limit': {exc}.", param="limit") from None
        try:
            rows = await self._store.audit(
                start=window.start,
                end=window.end,
                action=params.get("action") or None,
                actor=params.get("actor") or None,
                target=params.get("target") or None,
                limit=limit,
            )
        except StoreUnavailableError:
            raise self._unavailable() from None
        return JSONResponse({"object": "list", "data": rows})
