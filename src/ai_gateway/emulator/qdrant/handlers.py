"""The Qdrant REST endpoints the emulator answers, each parsed with qdrant-client's own request
models and done by qdrant-client's local mode, so that filters, payload indexes, sparse vectors,
prefetch with fusion, deletes by filter, counts and scrolls mean what that library makes them
mean. Each handler returns the `result` of Qdrant's envelope; app.py wraps it and maps errors.

Defaults are the server's where its REST API differs from the client's methods: a query without
`with_payload` returns no payload, a query without `limit` returns 10 points, a scroll without
`with_payload` returns the payload.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import TypeAdapter, ValidationError
from qdrant_client import AsyncQdrantClient, models

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[Any]]

_DEFAULT_LIMIT = 10


class FormatError(ValueError):
    """The request's body is not JSON, or not the shape the endpoint takes (Qdrant: 400)."""


class NotFoundError(LookupError):
    """A collection or point that does not exist (Qdrant: 404)."""


class ConflictError(ValueError):
    """A collection made twice (Qdrant: 409)."""


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler


CLIENT_KEY = web.AppKey("qdrant_local", AsyncQdrantClient)


def _client(request: web.Request) -> AsyncQdrantClient:
    return request.app[CLIENT_KEY]


async def _body(request: web.Request, shape: type[T]) -> T:
    """The body as the model `shape`."""
    parsed: T = await _body_as(request, shape)
    return parsed


async def _body_as(request: web.Request, shape: Any) -> Any:
    """The body as `shape`: a model, or a union of models such as PointsSelector."""
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise FormatError(str(exc)) from None
    try:
        return TypeAdapter(shape).validate_python(data)
    except ValidationError as exc:
        raise FormatError(" ".join(str(exc).split())) from None


async def _existing(request: web.Request) -> str:
    """The path's collection, which must exist (Qdrant answers 404 otherwise)."""
    name = request.match_info["collection_name"]
    if not await _client(request).collection_exists(name):
        raise NotFoundError(f"Collection `{name}` doesn't exist!")
    return name


def _filtered(
    points: list[models.ExtendedPointId] | None, where: models.Filter | None
) -> models.PointsSelector:
    if points is not None:
        return models.PointIdsList(points=points)
    if where is not None:
        return models.FilterSelector(filter=where)
    raise FormatError("either `points` or `filter` is required")


# --- collections -------------------------------------------------------------------------------


async def list_collections(request: web.Request) -> Any:
    return await _client(request).get_collections()


async def get_collection(request: web.Request) -> Any:
    name = await _existing(request)
    return await _client(request).get_collection(name)


async def collection_exists(request: web.Request) -> Any:
    name = request.match_info["collection_name"]
    return models.CollectionExistence(exists=await _client(request).collection_exists(name))


async def create_collection(request: web.Request) -> Any:
    name = request.match_info["collection_name"]
    spec = await _body(request, models.CreateCollection)
    client = _client(request)
    if await client.collection_exists(name):
        raise ConflictError(f"Collection `{name}` already exists!")
    return await client.create_collection(
        name,
        vectors_config=spec.vectors,
        sparse_vectors_config=spec.sparse_vectors,
        metadata=spec.metadata,
    )


async def delete_collection(request: web.Request) -> Any:
    name = request.match_info["collection_name"]
    return await _client(request).delete_collection(name)


async def create_index(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.CreateFieldIndex)
    return await _client(request).create_payload_index(
        name, spec.field_name, field_schema=spec.field_schema
    )


async def delete_index(request: web.Request) -> Any:
    name = await _existing(request)
    return await _client(request).delete_payload_index(name, request.match_info["field_name"])


# --- points ------------------------------------------------------------------------------------


async def upsert_points(request: web.Request) -> Any:
    name = await _existing(request)
    operation: Any = await _body_as(request, models.PointInsertOperations)
    points: Any = operation.points if isinstance(operation, models.PointsList) else operation.batch
    return await _client(request).upsert(
        name, points, update_filter=operation.update_filter, update_mode=operation.update_mode
    )


async def delete_points(request: web.Request) -> Any:
    name = await _existing(request)
    selector: Any = await _body_as(request, models.PointsSelector)
    return await _client(request).delete(name, points_selector=selector)


async def set_payload(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.SetPayload)
    selector = _filtered(spec.points, spec.filter)
    return await _client(request).set_payload(name, spec.payload, selector, key=spec.key)


async def overwrite_payload(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.SetPayload)
    selector = _filtered(spec.points, spec.filter)
    return await _client(request).overwrite_payload(name, spec.payload, selector)


async def delete_payload(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.DeletePayload)
    selector = _filtered(spec.points, spec.filter)
    return await _client(request).delete_payload(name, spec.keys, selector)


async def count_points(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.CountRequest)
    return await _client(request).count(
        name, count_filter=spec.filter, exact=spec.exact is not False
    )


async def get_points(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.PointRequest)
    return await _client(request).retrieve(
        name,
        spec.ids,
        with_payload=spec.with_payload if spec.with_payload is not None else True,
        with_vectors=spec.with_vector if spec.with_vector is not None else False,
    )


async def get_point(request: web.Request) -> Any:
    name = await _existing(request)
    raw = request.match_info["id"]
    point_id: models.ExtendedPointId = int(raw) if raw.isdigit() else raw
    found = await _client(request).retrieve(name, [point_id], with_payload=True, with_vectors=True)
    if not found:
        raise NotFoundError(f"No point with id {raw} found")
    return found[0]


async def scroll_points(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.ScrollRequest)
    points, next_offset = await _client(request).scroll(
        name,
        scroll_filter=spec.filter,
        limit=spec.limit if spec.limit is not None else _DEFAULT_LIMIT,
        order_by=spec.order_by,
        offset=spec.offset,
        with_payload=spec.with_payload if spec.with_payload is not None else True,
        with_vectors=spec.with_vector if spec.with_vector is not None else False,
    )
    return models.ScrollResult(points=points, next_page_offset=next_offset)


async def _query(client: AsyncQdrantClient, name: str, spec: models.QueryRequest) -> Any:
    return await client.query_points(
        name,
        query=spec.query,
        using=spec.using,
        prefetch=spec.prefetch,
        query_filter=spec.filter,
        search_params=spec.params,
        limit=spec.limit if spec.limit is not None else _DEFAULT_LIMIT,
        offset=spec.offset,
        with_payload=spec.with_payload if spec.with_payload is not None else False,
        with_vectors=spec.with_vector if spec.with_vector is not None else False,
        score_threshold=spec.score_threshold,
        lookup_from=spec.lookup_from,
    )


async def query_points(request: web.Request) -> Any:
    name = await _existing(request)
    spec = await _body(request, models.QueryRequest)
    return await _query(_client(request), name, spec)


async def query_batch(request: web.Request) -> Any:
    name = await _existing(request)
    batch = await _body(request, models.QueryRequestBatch)
    return [await _query(_client(request), name, spec) for spec in batch.searches]


ROUTES: tuple[Route, ...] = (
    Route("GET", "/collections", list_collections),
    Route("GET", "/collections/{collection_name}", get_collection),
    Route("PUT", "/collections/{collection_name}", create_collection),
    Route("DELETE", "/collections/{collection_name}", delete_collection),
    Route("GET", "/collections/{collection_name}/exists", collection_exists),
    Route("PUT", "/collections/{collection_name}/index", create_index),
    Route("DELETE", "/collections/{collection_name}/index/{field_name}", delete_index),
    Route("PUT", "/collections/{collection_name}/points", upsert_points),
    Route("POST", "/collections/{collection_name}/points", get_points),
    Route("GET", "/collections/{collection_name}/points/{id}", get_point),
    Route("POST", "/collections/{collection_name}/points/delete", delete_points),
    Route("POST", "/collections/{collection_name}/points/payload", set_payload),
    Route("PUT", "/collections/{collection_name}/points/payload", overwrite_payload),
    Route("POST", "/collections/{collection_name}/points/payload/delete", delete_payload),
    Route("POST", "/collections/{collection_name}/points/count", count_points),
    Route("POST", "/collections/{collection_name}/points/scroll", scroll_points),
    Route("POST", "/collections/{collection_name}/points/query", query_points),
    Route("POST", "/collections/{collection_name}/points/query/batch", query_batch),
)
