"""OpenAI's files and vector-stores API (docs/rag.md), under /v1 and /ai alike, for any caller:
each sees only the files and stores of its own scope (`rag.scope`: its key, user or team; the
master key sees all). Declared in `api/routes.py`.

    POST   /files                                      upload (multipart: file, purpose)
    GET    /files                                      list (after, limit, order, purpose)
    GET    /files/{id}, DELETE /files/{id}, GET /files/{id}/content
    POST   /vector_stores, GET /vector_stores
    GET    /vector_stores/{id}, POST (modify), DELETE
    POST   /vector_stores/{id}/files, GET (list: after, before, limit, order, filter)
    GET    /vector_stores/{id}/files/{file_id}, POST (attributes), DELETE
    POST   /vector_stores/{id}/file_batches
    GET    /vector_stores/{id}/file_batches/{batch_id}, POST .../cancel, GET .../files
    POST   /vector_stores/{id}/search

A store file or batch still `in_progress` is answered with `openai-poll-after-ms`, the pace the
official SDKs' `*_and_poll` helpers then poll at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.api.uploads import read_form
from ai_gateway.errors import InvalidRequestError, NotFoundError
from ai_gateway.rag.access import owner_of, viewer_of
from ai_gateway.rag.config import RagScope
from ai_gateway.rag.records import FileStatus, Page, Viewer
from ai_gateway.rag.search import Searcher
from ai_gateway.rag.service import RagService
from ai_gateway.rag.spec import (
    BatchCreate,
    SearchBody,
    StoreFileCreate,
    StoreFileUpdate,
    VectorStoreCreate,
    VectorStoreUpdate,
)
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.principal import Principal

JSON_BODY_LIMIT = 1024 * 1024
FORM_OVERHEAD = 64 * 1024  # the multipart framing and fields around the file
POLL_AFTER_MS = "200"
_STATUSES = ("in_progress", "completed", "failed", "cancelled")


class VectorStoresAPI:
    def __init__(
        self,
        service: RagService | None,
        searcher: Searcher | None,
        scope: RagScope,
        body: BodyLimit,
    ) -> None:
        self._rag = service
        self._searcher = searcher
        self._scope = scope
        self._json = body.at_most(JSON_BODY_LIMIT)
        most = service.config.limits.max_file_bytes if service is not None else 0
        self._form = BodyLimit(most + FORM_OVERHEAD, body.timeout_s)

    def _service(self) -> RagService:
        if self._rag is None:
            raise NotFoundError(
                "Files and vector stores are turned off on this gateway (rag.enabled in its "
                "config file).",
                code="rag_disabled",
            )
        return self._rag

    @staticmethod
    def _principal(request: Request) -> Principal | None:
        return RequestInfo.from_scope(request.scope).principal

    def _viewer(self, request: Request) -> Viewer:
        return viewer_of(self._principal(request))

    # Files.

    async def upload_file(self, request: Request) -> Response:
        service = self._service()
        form = await read_form(request, self._form)
        upload = form.files.get("file")
        if upload is None:
            raise InvalidRequestError("Send the file in a part named 'file'.", param="file")
        purpose = form.fields.get("purpose")
        if not purpose:
            raise InvalidRequestError("'purpose' is required (assistants).", param="purpose")
        owner = owner_of(self._principal(request), self._scope)
        record = await service.upload(upload.filename, upload.data, purpose, owner)
        return JSONResponse(record.view())

    async def list_files(self, request: Request) -> Response:
        service = self._service()
        page = _page(request, default=10_000, most=10_000)
        purpose = request.query_params.get("purpose")
        records, more = await service.files(self._viewer(request), page, purpose)
        return _list([r.view() for r in records], [r.id for r in records], more)

    async def get_file(self, request: Request) -> Response:
        record = await self._service().file(_param(request, "file_id"), self._viewer(request))
        return JSONResponse(record.view())

    async def delete_file(self, request: Request) -> Response:
        file_id = _param(request, "file_id")
        await self._service().delete_file(file_id, self._viewer(request))
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        file_id = _param(request, "file_id")
        _, data = await self._service().content(file_id, self._viewer(request))
        return Response(data, media_type="application/octet-stream")

    # Vector stores.

    async def create_store(self, request: Request) -> Response:
        service = self._service()
        body = parse_body(VectorStoreCreate, await read_json(request, self._json))
        owner = owner_of(self._principal(request), self._scope)
        record = await service.create_store(body, owner, self._viewer(request))
        return JSONResponse(record.view(service.now()))

    async def list_stores(self, request: Request) -> Response:
        page = _page(request)
        service = self._service()
        records, more = await service.vector_stores(self._viewer(request), page)
        now = service.now()
        return _list([r.view(now) for r in records], [r.id for r in records], more)

    async def get_store(self, request: Request) -> Response:
        store_id = _param(request, "store_id")
        service = self._service()
        record = await service.vector_store(store_id, self._viewer(request))
        return JSONResponse(record.view(service.now()))

    async def update_store(self, request: Request) -> Response:
        body = parse_body(VectorStoreUpdate, await read_json(request, self._json))
        store_id = _param(request, "store_id")
        service = self._service()
        record = await service.update_store(store_id, body, self._viewer(request))
        return JSONResponse(record.view(service.now()))

    async def delete_store(self, request: Request) -> Response:
        store_id = _param(request, "store_id")
        await self._service().delete_store(store_id, self._viewer(request))
        return JSONResponse({"id": store_id, "object": "vector_store.deleted", "deleted": True})

    # Files in a vector store.

    async def add_store_file(self, request: Request) -> Response:
        body = parse_body(StoreFileCreate, await read_json(request, self._json))
        row = await self._service().add_file(
            _param(request, "store_id"),
            body.file_id,
            body.attributes,
            body.chunking_strategy,
            self._viewer(request),
        )
        return _polled(row.view(), row.status == "in_progress")

    async def list_store_files(self, request: Request) -> Response:
        rows, more = await self._service().store_files(
            _param(request, "store_id"), self._viewer(request), _page(request), _status(request)
        )
        return _list([r.view() for r in rows], [r.file_id for r in rows], more)

    async def get_store_file(self, request: Request) -> Response:
        row = await self._service().store_file(
            _param(request, "store_id"), _param(request, "file_id"), self._viewer(request)
        )
        return _polled(row.view(), row.status == "in_progress")

    async def update_store_file(self, request: Request) -> Response:
        body = parse_body(StoreFileUpdate, await read_json(request, self._json))
        row = await self._service().update_store_file(
            _param(request, "store_id"),
            _param(request, "file_id"),
            body.attributes,
            self._viewer(request),
        )
        return JSONResponse(row.view())

    async def delete_store_file(self, request: Request) -> Response:
        file_id = _param(request, "file_id")
        await self._service().delete_store_file(
            _param(request, "store_id"), file_id, self._viewer(request)
        )
        return JSONResponse({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    # File batches.

    async def create_batch(self, request: Request) -> Response:
        body = parse_body(BatchCreate, await read_json(request, self._json))
        batch = await self._service().create_batch(
            _param(request, "store_id"), body, self._viewer(request)
        )
        return _polled(batch.view(), batch.status == "in_progress")

    async def get_batch(self, request: Request) -> Response:
        batch = await self._service().batch(
            _param(request, "store_id"), _param(request, "batch_id"), self._viewer(request)
        )
        return _polled(batch.view(), batch.status == "in_progress")

    async def cancel_batch(self, request: Request) -> Response:
        batch = await self._service().cancel_batch(
            _param(request, "store_id"), _param(request, "batch_id"), self._viewer(request)
        )
        return JSONResponse(batch.view())

    async def list_batch_files(self, request: Request) -> Response:
        rows, more = await self._service().store_files(
            _param(request, "store_id"),
            self._viewer(request),
            _page(request),
            _status(request),
            batch_id=_param(request, "batch_id"),
        )
        return _list([r.view() for r in rows], [r.file_id for r in rows], more)

    # Search.

    async def search(self, request: Request) -> Response:
        self._service()
        assert self._searcher is not None
        body = parse_body(SearchBody, await read_json(request, self._json))
        page = await self._searcher.page(_param(request, "store_id"), body, self._viewer(request))
        return JSONResponse(page)


def _param(request: Request, name: str) -> str:
    return cast(str, request.path_params[name])


def _list(data: list[dict[str, Any]], ids: Sequence[str], more: bool) -> Response:
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
            "has_more": more,
        }
    )


def _polled(view: dict[str, Any], in_progress: bool) -> Response:
    headers = {"openai-poll-after-ms": POLL_AFTER_MS} if in_progress else None
    return JSONResponse(view, headers=headers)


def _page(request: Request, default: int = 20, most: int = 100) -> Page:
    params = request.query_params
    raw = params.get("limit")
    limit = default
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= most:
            raise InvalidRequestError(
                f"limit must be a whole number from 1 to {most}.", param="limit"
            )
        limit = int(raw)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be 'asc' or 'desc'.", param="order")
    return Page(
        limit=limit,
        order=cast(Literal["asc", "desc"], order),
        after=params.get("after") or None,
        before=params.get("before") or None,
    )


def _status(request: Request) -> FileStatus | None:
    status = request.query_params.get("filter")
    if status is None:
        return None
    if status not in _STATUSES:
        raise InvalidRequestError(f"filter must be one of {', '.join(_STATUSES)}.", param="filter")
    return cast(FileStatus, status)
