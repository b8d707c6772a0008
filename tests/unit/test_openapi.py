from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from ai_gateway.api.common import BodyLimit
from ai_gateway.api.openapi import build_openapi
from ai_gateway.api.route_table import API_PREFIXES
from ai_gateway.api.routes import rag_entries
from ai_gateway.api.vector_stores import VectorStoresAPI
from ai_gateway.rag.index import IndexHit
from ai_gateway.rag.records import (
    ANYONE,
    EVERYONE,
    BatchRecord,
    FileCounts,
    FileRecord,
    LastError,
    StoreFileRecord,
    VectorStoreRecord,
)
from ai_gateway.rag.search import Searcher
from ai_gateway.rag.service import RagService
from ai_gateway.rag.spec import SearchBody


def test_document_is_valid_openapi_3_1() -> None:
    validate(build_openapi())


def test_every_route_is_documented_under_both_prefixes() -> None:
    paths = build_openapi()["paths"]
    for prefix in ("/ai", "/v1"):
        for suffix in ("/chat/completions", "/embeddings", "/models", "/models/{model_id}"):
            assert prefix + suffix in paths
    for extra in ("/health", "/health/ready", "/metrics"):
        assert extra in paths


def test_every_prompt_route_of_the_route_table_is_documented() -> None:
    paths = build_openapi()["paths"]
    for prefix in ("/ai", "/v1"):
        documented = {
            (path.removeprefix(prefix), method.upper())
            for path, ops in paths.items()
            if path.startswith(f"{prefix}/prompts")
            for method in ops
        }
        assert documented == {
            ("/prompts", "POST"),
            ("/prompts", "GET"),
            ("/prompts/{prompt_id}", "GET"),
            ("/prompts/{prompt_id}/versions", "POST"),
            ("/prompts/{prompt_id}/versions/{version}", "GET"),
            ("/prompts/{prompt_id}/labels/{label}", "PUT"),
            ("/prompts/{prompt_id}/render", "POST"),
        }


def test_every_rag_route_of_the_route_table_is_documented() -> None:
    entries = rag_entries(VectorStoresAPI(None, None, "user", BodyLimit(1024, 1.0)))
    declared = {(path, method) for e in entries for path in e.paths() for method in e.methods}
    rag = ("/files", "/vector_stores")
    documented = {
        (path, method.upper())
        for path, ops in build_openapi()["paths"].items()
        if path.startswith(tuple(prefix + top for prefix in API_PREFIXES for top in rag))
        for method in ops
    }
    assert documented == declared
    assert {path[:3] for path, _ in documented} == {"/ai", "/v1"}


def test_operation_ids_are_unique() -> None:
    ids = Counter(
        op["operationId"] for ops in build_openapi()["paths"].values() for op in ops.values()
    )
    assert [op_id for op_id, n in ids.items() if n > 1] == []


def check(spec: dict[str, Any], name: str, instance: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=str)
    assert not errors, [e.message for e in errors]


def test_vector_store_answers_match_their_schemas() -> None:
    spec = build_openapi()
    counts = FileCounts(in_progress=1, completed=2)
    file = FileRecord("file-1", "a.md", 10, "assistants", 1, ANYONE, "0" * 64)
    expiry = {"anchor": "last_active_at", "days": 7}
    store = VectorStoreRecord("vs_1", "docs", None, {"k": "v"}, 1, 2, expiry, ANYONE, counts)
    chunking = {"type": "static", "static": {"max_chunk_size_tokens": 800}}
    failed = StoreFileRecord(
        "vs_1", "file-1", "failed", 1, chunking, {"n": 1.5}, LastError("invalid_file", "empty")
    )
    done = StoreFileRecord("vs_1", "file-2", "completed", 1, chunking, {"t": True, "s": "x"})
    check(spec, "FileObject", file.view())
    check(spec, "VectorStore", store.view())
    check(spec, "VectorStore", VectorStoreRecord("vs_2", None, None, {}, 1, 1, None, ANYONE).view())
    check(spec, "VectorStoreFile", failed.view())
    check(spec, "VectorStoreFileBatch", BatchRecord("vsfb_1", "vs_1", 1, file_counts=counts).view())
    for kind in ("file", "vector_store.deleted", "vector_store.file.deleted"):
        check(spec, "DeletedObject", {"id": "x", "object": kind, "deleted": True})
    page = {"object": "list", "first_id": "file-1", "last_id": "file-2", "has_more": False}
    check(spec, "VectorStoreFileList", {**page, "data": [failed.view(), done.view()]})
    empty: dict[str, Any] = {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": True,
    }
    check(spec, "FileList", empty)
    check(spec, "VectorStoreSearchResultsPage", asyncio.run(search_page()))
    with pytest.raises(AssertionError):  # the schemas do tell the objects apart
        check(spec, "FileList", {**empty, "data": [store.view()]})


async def search_page() -> dict[str, Any]:
    """What Searcher.page answers, with the service, index and embedding model faked."""
    hit = IndexHit("vs_1", "file-1", "a.md", 0, "some text", 0.75, {"author": "jane"})

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    async def search(*args: Any, **kwargs: Any) -> list[IndexHit]:
        return [hit]

    async def index() -> Any:
        return SimpleNamespace(search=search)

    async def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts]

    service = SimpleNamespace(
        vector_store=nothing,
        usable_store=nothing,
        config=SimpleNamespace(hybrid=True),
        index=index,
        store=SimpleNamespace(touch_store=nothing),
        now=lambda: 1,
    )
    body = SearchBody(query=["what is a", "the b"], rewrite_query=True)
    return await Searcher(cast(RagService, service), embed).page("vs_1", body, EVERYONE)


def test_request_schema_names_the_real_fields() -> None:
    schemas = build_openapi()["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    # Both required, unless the request names a prompt template (docs/prompts.md).
    assert chat["if"] == {"not": {"required": ["prompt"]}}
    assert set(chat["then"]["required"]) == {"model", "messages"}
    assert "prompt" in chat["properties"]
    assert "stream_options" in chat["properties"]
    assert chat["additionalProperties"] is True


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in build_openapi()["paths"].items()
        for method, op in ops.items()
    ]


def test_every_operation_that_needs_a_credential_documents_401() -> None:
    # Found by fuzzing (tests/reliability): GET /v1/models answered an undocumented 401.
    missing = [
        f"{method.upper()} {path}"
        for path, method, op in _operations()
        if op.get("security") and "401" not in op["responses"]
    ]
    assert not missing


def test_event_streams_are_described_one_event_at_a_time() -> None:
    # OpenAPI 3.1 tools read a text/event-stream `schema` as the schema of one event (its
    # `data`, `event`, `id` fields); `{"type": "string"}` made every streamed answer
    # non-conforming to them (found by fuzzing: POST /v1/code/generate with stream).
    streams = {
        f"{method.upper()} {path}": media["schema"]
        for path, method, op in _operations()
        for response in op["responses"].values()
        for kind, media in response.get("content", {}).items()
        if kind == "text/event-stream"
    }
    assert "POST /v1/chat/completions" in streams
    assert "POST /v1/code/generate" in streams
    event = {"data": '{"type": "delta", "text": "x"}', "event": "message"}
    for name, schema in streams.items():
        assert Draft202012Validator(schema).is_valid(event), name
        assert not Draft202012Validator(schema).is_valid("data: {}"), name


def test_every_operation_with_query_parameters_documents_400() -> None:
    # Found by fuzzing: GET /v1/responses/{id}/input_items?order=AAA answered an undocumented 400.
    missing = [
        f"{method.upper()} {path}"
        for path, method, op in _operations()
        if any(p.get("in") == "query" for p in op.get("parameters", []))
        and "400" not in op["responses"]
    ]
    assert not missing
