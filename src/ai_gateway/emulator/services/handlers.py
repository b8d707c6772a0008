"""The three services' endpoints, as docs/integrations.md defines them, over the seeded data.

Memory: ``POST /v1/memories/search``, ``POST /v1/exchanges``. Project:
``POST /v1/projects/{project_id}/context``. Learning: ``GET /v1/learners/{user_id}/profile``.
Each service also answers ``GET /health``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ai_gateway.emulator.services.data import (
    LearningData,
    MemoryData,
    MemoryItem,
    ProjectData,
    score,
)
from ai_gateway.emulator.services.faults import error, state_of

MAX_LIMIT = 100


class BadRequest(Exception):
    """The request does not follow the contract: answered 422."""


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _string(body: dict[str, Any], key: str, *, empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not empty and not value):
        raise BadRequest(f"'{key}' must be a {'' if empty else 'non-empty '}string")
    return value


def _limit(body: dict[str, Any]) -> int:
    value = body.get("limit")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"'limit' must be an integer between 1 and {MAX_LIMIT}")
    return value


def _unprocessable(exc: BadRequest) -> web.Response:
    return error(422, str(exc))


# -- Memory --------------------------------------------------------------------------------------


async def search_memories(request: web.Request) -> web.Response:
    data: MemoryData = state_of(request).data
    try:
        body = await _object(request)
        user, query = _string(body, "user_id"), _string(body, "query", empty=True)
        limit = _limit(body)
    except BadRequest as exc:
        return _unprocessable(exc)
    ranked = sorted(
        ((score(query, item.text), item) for item in data.memories.get(user, [])),
        key=lambda pair: (-pair[0], pair[1].id),
    )
    memories = [
        {"id": item.id, "text": item.text, "score": value, "created_at": item.created_at}
        for value, item in ranked
        if value > 0
    ][:limit]
    return web.json_response({"memories": memories, "summary": data.summaries.get(user)})


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array")
    for message in messages:
        if not (
            isinstance(message, dict)
            and message.get("role") in ("system", "user", "assistant", "tool")
            and isinstance(message.get("content"), str)
        ):
            raise BadRequest("each message must have a role and a string content")
    return messages


async def store_exchange(request: web.Request) -> web.Response:
    data: MemoryData = state_of(request).data
    try:
        body = await _object(request)
        user, request_id = _string(body, "user_id"), _string(body, "request_id")
        messages, answer = _messages(body), _string(body, "answer", empty=True)
        project = body.get("project_id")
        if project is not None and not isinstance(project, str):
            raise BadRequest("'project_id' must be a string or null")
    except BadRequest as exc:
        return _unprocessable(exc)
    exchange_id = f"ex-{len(data.exchanges) + 1}"
    data.exchanges.append({"id": exchange_id, **body})
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    data.memories.setdefault(user, []).append(
        MemoryItem(exchange_id, f"Q: {question} A: {answer}", "2025-06-01T00:00:00Z")
    )
    return web.json_response({"id": exchange_id, "request_id": request_id}, status=201)


# -- Project -------------------------------------------------------------------------------------


async def project_context(request: web.Request) -> web.Response:
    data: ProjectData = state_of(request).data
    try:
        body = await _object(request)
        user, query = _string(body, "user_id"), _string(body, "query", empty=True)
        limit = _limit(body)
    except BadRequest as exc:
        return _unprocessable(exc)
    project = data.projects.get(request.match_info["project_id"])
    if project is None:
        return error(404, "no such project")
    if user not in project["members"]:
        return error(403, "this user may not see this project")
    files = data.files.get(project["id"], {})
    ranked = sorted(
        ((score(query, f"{path} {content}"), path) for path, content in files.items()),
        key=lambda pair: (-pair[0], pair[1]),
    )
    snippets = [
        {"path": path, "content": files[path], "score": value, "start_line": 1}
        for value, path in ranked
        if value > 0
    ][:limit]
    meta = {k: project[k] for k in ("id", "name", "description", "languages")}
    return web.json_response({"project": meta, "snippets": snippets})


# -- Learning ------------------------------------------------------------------------------------


async def learner_profile(request: web.Request) -> web.Response:
    data: LearningData = state_of(request).data
    profile = data.profiles.get(request.match_info["user_id"])
    if profile is None:
        return error(404, "no such learner")
    return web.json_response(profile)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": state_of(request).name})
