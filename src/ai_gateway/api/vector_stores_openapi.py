"""The files and vector-stores routes' part of GET /openapi.json (docs/rag.md; under /ai and /v1).

`build_openapi` adds `VECTOR_STORE_SCHEMAS` (the request bodies) to its component models,
`VECTOR_STORE_OBJECTS` (the answers, as the records' `view()` and the search page render them)
to its component schemas, and merges `vector_store_paths()` into its paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel

from ai_gateway.api.prompts_openapi import operation
from ai_gateway.api.vector_stores import JSON_BODY_LIMIT
from ai_gateway.rag.extract import SUPPORTED
from ai_gateway.rag.records import BatchStatus, ErrorCode, FileStatus
from ai_gateway.rag.service import PURPOSES
from ai_gateway.rag.spec import (
    BatchCreate,
    SearchBody,
    StoreFileCreate,
    StoreFileUpdate,
    VectorStoreCreate,
    VectorStoreUpdate,
)

VECTOR_STORE_SCHEMAS: list[type[BaseModel]] = [
    VectorStoreCreate,
    VectorStoreUpdate,
    StoreFileCreate,
    StoreFileUpdate,
    BatchCreate,
    SearchBody,
]

_REF = "#/components/schemas/{model}"
_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}
_NULL_STR: dict[str, Any] = {"type": ["string", "null"]}
_ATTRIBUTES: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _object(kind: str | None = None, **properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON object with these properties, all of them present; `kind` is its `object`."""
    if kind is not None:
        properties = {"id": _STR, "object": {"const": kind}, **properties}
    return {"type": "object", "properties": properties, "required": list(properties)}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _list_of(name: str) -> dict[str, Any]:
    """A page of a list; `first_id` and `last_id` are the cursors for `before` and `after`."""
    return _object(
        object={"const": "list"},
        data={"type": "array", "items": _ref(name)},
        first_id=_NULL_STR,
        last_id=_NULL_STR,
        has_more={"type": "boolean"},
    )


_COUNTS = _object(in_progress=_INT, completed=_INT, failed=_INT, cancelled=_INT, total=_INT)
_EXPIRES_AFTER = _nullable(
    _object(anchor={"const": "last_active_at"}, days={"type": "integer", "minimum": 1})
)
_LAST_ERROR = _nullable(_object(code={"enum": list(get_args(ErrorCode))}, message=_STR))
_CHUNKING: dict[str, Any] = {
    "type": "object",
    "description": 'As resolved: `{"type": "static", "static": {"max_chunk_size_tokens", '
    '"chunk_overlap_tokens"}}` (`auto` is 800 tokens with 400 of overlap).',
}
_RESULT = _object(
    file_id=_STR,
    filename=_STR,
    score={"type": "number"},
    attributes=_ATTRIBUTES,
    content={
        "type": "array",
        "items": _object(type={"const": "text"}, text=_STR),
    },
)

# The answers' shapes, for the component schemas (names apart from the request models').
VECTOR_STORE_OBJECTS: dict[str, dict[str, Any]] = {
    "FileObject": _object(
        "file",
        bytes=_INT,
        created_at=_INT,
        expires_at={"type": ["integer", "null"]},
        filename=_STR,
        purpose={"enum": list(PURPOSES)},
        status={"enum": ["uploaded", "processed", "error"]},
        status_details=_NULL_STR,
    ),
    "FileCounts": _COUNTS,
    "VectorStore": _object(
        "vector_store",
        created_at=_INT,
        name=_NULL_STR,
        description=_NULL_STR,
        usage_bytes=_INT,
        file_counts=_ref("FileCounts"),
        status={"enum": ["expired", "in_progress", "completed"]},
        expires_after=_EXPIRES_AFTER,
        expires_at={"type": ["integer", "null"]},
        last_active_at=_INT,
        metadata={"type": "object", "additionalProperties": _STR},
    ),
    "VectorStoreFile": _object(
        "vector_store.file",
        usage_bytes=_INT,
        created_at=_INT,
        vector_store_id=_STR,
        status={"enum": list(get_args(FileStatus))},
        last_error=_LAST_ERROR,
        chunking_strategy=_CHUNKING,
        attributes=_ATTRIBUTES,
    ),
    "VectorStoreFileBatch": _object(
        "vector_store.files_batch",
        created_at=_INT,
        vector_store_id=_STR,
        status={"enum": list(get_args(BatchStatus))},
        file_counts=_ref("FileCounts"),
    ),
    "DeletedObject": _object(
        id=_STR,
        object={"enum": ["file", "vector_store.deleted", "vector_store.file.deleted"]},
        deleted={"const": True},
    ),
    "VectorStoreSearchResultsPage": _object(
        object={"const": "vector_store.search_results.page"},
        search_query={"type": "array", "items": _STR},
        data={"type": "array", "items": _RESULT},
        has_more={"type": "boolean"},
        next_page={"type": "null"},
    ),
    "FileList": _list_of("FileObject"),
    "VectorStoreList": _list_of("VectorStore"),
    "VectorStoreFileList": _list_of("VectorStoreFile"),
}

_CONTENT = "content"  # the file-content route's answer: the bytes, not JSON
_FORM = "multipart"  # the upload's body
_ANSWERS = {
    "FileObject": "The file",
    "FileList": "A page of the caller's files",
    "VectorStore": "The vector store",
    "VectorStoreList": "A page of the caller's vector stores",
    "VectorStoreFile": "The file in the store (`in_progress` until it is indexed)",
    "VectorStoreFileList": "A page of the files in the store (or in the batch)",
    "VectorStoreFileBatch": "The batch (`in_progress` until each of its files is done)",
    "DeletedObject": "Deleted",
    "VectorStoreSearchResultsPage": "The best passages, best first",
    _CONTENT: "The file's bytes, as uploaded",
}
_POLL = {
    "openai-poll-after-ms": {
        "description": "Sent while the status is `in_progress`: the milliseconds to wait before "
        "asking again (the pace of the OpenAI SDKs' `*_and_poll` helpers).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {
                        **_BINARY,
                        "description": "The file, with its name (its extension says its type: "
                        f"{', '.join(sorted(SUPPORTED))}).",
                    },
                    "purpose": {"enum": list(PURPOSES)},
                },
                "required": ["file", "purpose"],
            }
        }
    },
}
_PATH = {
    "file_id": "A file's id (`file-...`).",
    "store_id": "A vector store's id (`vs_...`).",
    "batch_id": "A file batch's id (`vsfb_...`).",
}


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    param = {"name": name, "in": where, "required": where == "path"}
    return {**param, "description": description, "schema": schema}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return _param(name, "query", description, schema)


def _limit(default: int, most: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 1, "maximum": most, "default": default}
    return _query("limit", f"Items in the page, 1 to {most}.", schema)


_QUERY = {
    "after": _query("after", "List after this id (the `last_id` of the page before).", _STR),
    "before": _query("before", "List before this id (the `first_id` of the page after).", _STR),
    "limit": _limit(20, 100),
    "file_limit": _limit(10_000, 10_000),
    "order": _query(
        "order",
        "By creation time: newest first (`desc`) or oldest first (`asc`).",
        {"enum": ["asc", "desc"], "default": "desc"},
    ),
    "purpose": _query("purpose", "Only the files of this purpose.", _STR),
    "filter": _query(
        "filter", "Only the files in this state.", {"enum": list(get_args(FileStatus))}
    ),
}
_PAGE = ("after", "before", "limit", "order")

_ERRORS = {
    "401": "Missing or refused credential, when authentication is on.",
    "404": "No such file, vector store, file in the store or batch among the caller's own (one "
    "of another key, user or team is answered the same), or files and vector stores are turned "
    "off on this gateway (rag_disabled).",
    "408": "The body did not arrive within body_timeout_s (request_timeout).",
    "502": "The embedding model's upstream failed.",
    "503": "The files and vector stores database, or the vector index "
    "(vector_index_unavailable), is unavailable.",
}
_INVALID = {
    _FORM: "Not multipart/form-data (invalid_content_type) or not well-formed "
    "(invalid_multipart), no `file` part, no `purpose` or one the gateway does not keep, or a "
    "file type it does not read (unsupported_file).",
    "json": "The body is not JSON, a field fails validation (a chunking_strategy or filters "
    "included), or the store holds rag.limits.max_files_per_store files (too_many_files); the "
    "message and `param` name it.",
    "query": "A query parameter is invalid; the message and `param` name it.",
}
_TOO_LARGE = {
    _FORM: "The file is larger than rag.limits.max_file_bytes.",
    "json": f"The body is larger than {JSON_BODY_LIMIT // 1024 // 1024} MiB.",
}


_SUMMARIES = {
    "upload_file": "Upload a file (multipart/form-data: `file` and `purpose`)",
    "list_files": "List the caller's files",
    "retrieve_file": "Retrieve a file",
    "delete_file": "Delete a file (and remove it from every vector store)",
    "retrieve_file_content": "Retrieve a file's bytes",
    "create_vector_store": "Create a vector store (with `file_ids`: they are added)",
    "list_vector_stores": "List the caller's vector stores",
    "retrieve_vector_store": "Retrieve a vector store",
    "modify_vector_store": "Modify a vector store's name, expiry or metadata",
    "delete_vector_store": "Delete a vector store (its files stay)",
    "create_vector_store_file": "Add a file to a vector store (indexed in the background)",
    "list_vector_store_files": "List a vector store's files",
    "retrieve_vector_store_file": "Retrieve a file in a vector store",
    "update_vector_store_file": "Set a store file's attributes",
    "delete_vector_store_file": "Remove a file from a vector store (the file itself stays)",
    "create_vector_store_file_batch": "Add files to a vector store at once",
    "retrieve_vector_store_file_batch": "Retrieve a file batch",
    "cancel_vector_store_file_batch": "Cancel a file batch (its files not yet indexed)",
    "list_vector_store_file_batch_files": "List a file batch's files",
    "search_vector_store": "Search a vector store: the best passages for the query",
}


@dataclass(frozen=True, slots=True)
class _Route:
    """One route of `routes.rag_entries` (its path after /ai or /v1); the summary is
    `_SUMMARIES[op_id]`."""

    method: str
    path: str
    op_id: str
    answer: str  # a component schema's name (or _CONTENT)
    body: str | None = None  # a request model's name (or _FORM)
    query: tuple[str, ...] = ()
    polled: bool = False  # answered with openai-poll-after-ms while in_progress
    embeds: bool = False  # calls the embedding model

    def errors(self) -> dict[str, str]:
        kind = None if self.body is None else _FORM if self.body == _FORM else "json"
        codes = ["401", "404", "503"]
        if kind is not None:
            codes += ["408"]
        if self.embeds:
            codes += ["502"]
        errors = {code: _ERRORS[code] for code in codes}
        if kind is not None:
            errors["413"] = _TOO_LARGE[kind]
        if kind is not None or self.query:
            errors["400"] = _INVALID[kind or "query"]
        return dict(sorted(errors.items()))


_F = "/files/{file_id}"
_VS = "/vector_stores/{store_id}"
_VB = _VS + "/file_batches/{batch_id}"
_LIST = (*_PAGE, "filter")
_FILES = ("after", "file_limit", "order", "purpose")
_SF = _VS + "/files"
_R = _Route
ROUTES: tuple[_Route, ...] = (
    _R("post", "/files", "upload_file", "FileObject", _FORM),
    _R("get", "/files", "list_files", "FileList", query=_FILES),
    _R("get", _F, "retrieve_file", "FileObject"),
    _R("delete", _F, "delete_file", "DeletedObject"),
    _R("get", _F + "/content", "retrieve_file_content", _CONTENT),
    _R("post", "/vector_stores", "create_vector_store", "VectorStore", "VectorStoreCreate"),
    _R("get", "/vector_stores", "list_vector_stores", "VectorStoreList", query=_PAGE),
    _R("get", _VS, "retrieve_vector_store", "VectorStore"),
    _R("post", _VS, "modify_vector_store", "VectorStore", "VectorStoreUpdate"),
    _R("delete", _VS, "delete_vector_store", "DeletedObject"),
    _R("post", _SF, "create_vector_store_file", "VectorStoreFile", "StoreFileCreate", polled=True),
    _R("get", _SF, "list_vector_store_files", "VectorStoreFileList", query=_LIST),
    _R("get", _VS + _F, "retrieve_vector_store_file", "VectorStoreFile", polled=True),
    _R("post", _VS + _F, "update_vector_store_file", "VectorStoreFile", "StoreFileUpdate"),
    _R("delete", _VS + _F, "delete_vector_store_file", "DeletedObject"),
    _R(
        "post",
        _VS + "/file_batches",
        "create_vector_store_file_batch",
        "VectorStoreFileBatch",
        "BatchCreate",
        polled=True,
    ),
    _R("get", _VB, "retrieve_vector_store_file_batch", "VectorStoreFileBatch", polled=True),
    _R("post", _VB + "/cancel", "cancel_vector_store_file_batch", "VectorStoreFileBatch"),
    _R(
        "get",
        _VB + "/files",
        "list_vector_store_file_batch_files",
        "VectorStoreFileList",
        query=_LIST,
    ),
    _R(
        "post",
        _VS + "/search",
        "search_vector_store",
        "VectorStoreSearchResultsPage",
        "SearchBody",
        embeds=True,
    ),
)


def _operation(prefix: str, route: _Route) -> dict[str, Any]:
    json_body = None if route.body == _FORM else route.body
    op = operation(
        prefix,
        route.op_id,
        _SUMMARIES[route.op_id],
        _ANSWERS[route.answer],
        body=json_body,
        errors=route.errors(),
    )
    ok = op["responses"]["200"]
    if route.answer == _CONTENT:
        ok["content"] = {"application/octet-stream": {"schema": _BINARY}}
    else:
        ok["content"] = {"application/json": {"schema": _ref(route.answer)}}
    if route.polled:
        ok["headers"] = _POLL
    if route.body == _FORM:
        op["requestBody"] = _UPLOAD
    params = [_param(n, "path", _PATH[n], _STR) for n in re.findall(r"\{(\w+)\}", route.path)]
    params += [_QUERY[name] for name in route.query]
    if params:
        op["parameters"] = params
    return op


def vector_store_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix in ("/ai", "/v1"):
        for route in ROUTES:
            paths.setdefault(prefix + route.path, {})[route.method] = _operation(prefix, route)
    return paths
