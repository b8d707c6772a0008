"""The prompt template API (admin only: the master key when authentication is on; declared in
`api/routes.py`, under /ai and /v1 alike):

    POST /prompts                          create a template with its version 1 (201)
    GET  /prompts                          list the templates (heads: labels, newest version)
    GET  /prompts/{id}                     a template's head and its newest version
    GET  /prompts/{id}/versions/{version}  one version
    POST /prompts/{id}/versions            add a version (201); `labels` move to it
    PUT  /prompts/{id}/labels/{label}      point a label at a version: {"version": N}
    POST /prompts/{id}/render              {version | label, variables} -> the rendered request,
                                           without calling a model

Unknown template, version or label: 404; a template, schema or variables that do not render:
400 naming the field or variable; the store down: 503.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.errors import NotFoundError
from ai_gateway.prompts.catalog import PromptCatalog
from ai_gateway.prompts.records import NAME_RULE, PromptRecord, is_name
from ai_gateway.prompts.spec import LabelMove, PromptCreate, RenderRequest, VersionCreate
from ai_gateway.schemas.validation import parse_body

PROMPT_BODY_LIMIT = 1024 * 1024


class PromptsAPI:
    def __init__(self, catalog: PromptCatalog, body: BodyLimit) -> None:
        self._catalog = catalog
        self._body = body.at_most(PROMPT_BODY_LIMIT)

    async def create(self, request: Request) -> Response:
        body = parse_body(PromptCreate, await read_json(request, self._body))
        catalog = self._catalog
        record = await catalog.create(
            body.id, body.description, body.template, body.variables, body.note
        )
        for label in body.labels:
            record = await catalog.set_label(body.id, label, 1)
        version = await catalog.version(body.id, 1)
        return JSONResponse({**record.view(), "version": version.view()}, status_code=201)

    async def list(self, request: Request) -> Response:
        records = await self._catalog.list()
        return JSONResponse({"object": "list", "data": [r.view() for r in records]})

    async def show(self, request: Request) -> Response:
        prompt_id = _prompt_id(request)
        record = await self._catalog.current(prompt_id)
        version = await self._catalog.version(prompt_id, record.latest_version)
        return JSONResponse({**record.view(), "version": version.view()})

    async def show_version(self, request: Request) -> Response:
        prompt_id = _prompt_id(request)
        number = _version(request)
        version = await self._catalog.version(prompt_id, number)
        return JSONResponse(version.view())

    async def add_version(self, request: Request) -> Response:
        prompt_id = _prompt_id(request)
        body = parse_body(VersionCreate, await read_json(request, self._body))
        version = await self._catalog.add_version(
            prompt_id, body.template, body.variables, body.note
        )
        record: PromptRecord | None = None
        for label in body.labels:
            record = await self._catalog.set_label(prompt_id, label, version.version)
        labels = record.view()["labels"] if record is not None else None
        view: dict[str, Any] = version.view()
        if labels is not None:
            view["labels"] = labels
        return JSONResponse(view, status_code=201)

    async def set_label(self, request: Request) -> Response:
        prompt_id = _prompt_id(request)
        label = str(request.path_params["label"])
        if not is_name(label):
            raise NotFoundError(f"A label name is {NAME_RULE}.", code="prompt_label_not_found")
        body = parse_body(LabelMove, await read_json(request, self._body))
        record = await self._catalog.set_label(prompt_id, label, body.version)
        return JSONResponse(record.view())

    async def render(self, request: Request) -> Response:
        prompt_id = _prompt_id(request)
        body = parse_body(RenderRequest, await read_json(request, self._body))
        compiled = await self._catalog.resolve(prompt_id, body.version, body.label)
        messages = compiled.render(body.variables)
        version = compiled.version
        return JSONResponse(
            {
                "object": "prompt.render",
                "id": version.prompt_id,
                "version": version.version,
                "request": {**compiled.fields, "messages": messages},
            }
        )


def _prompt_id(request: Request) -> str:
    prompt_id = str(request.path_params["prompt_id"])
    if not is_name(prompt_id):
        raise NotFoundError(
            f"No prompt template {prompt_id[:64]!r}: a template id is {NAME_RULE}.",
            code="prompt_not_found",
        )
    return prompt_id


def _version(request: Request) -> int:
    text = str(request.path_params["version"])
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise NotFoundError(
            f"No version {text[:16]!r}: versions are numbered 1, 2, 3, ...",
            code="prompt_version_not_found",
        )
    return int(text)
