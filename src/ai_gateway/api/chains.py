"""The chain routes (docs/chains.md; declared in `api/routes.py`, under /ai and /v1 alike):

    POST /chains                      create a chain with its version 1 (201)        admin
    GET  /chains                      list the chains (heads: labels, newest version) admin
    GET  /chains/{id}                 a chain's head and its newest version           admin
    POST /chains/{id}/versions        add a version (201); `labels` move to it        admin
    PUT  /chains/{id}/labels/{label}  point a label at a version: {"version": N}      admin
    POST /chains/{id}/run             run it: JSON, or SSE with `stream`              any caller

Unknown chain, version or label: 404; a definition that cannot be used: 400 naming the field.
A run's errors: pipeline/chain_run.py.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.api.draining import until_drained
from ai_gateway.api.event_stream import EventStreamResponse
from ai_gateway.api.render import SSE_HEADERS, route_headers
from ai_gateway.api.route_table import UNMATCHED, matched_route
from ai_gateway.chains.catalog import ChainCatalog, chain_view, version_view
from ai_gateway.chains.config import ChainsConfig
from ai_gateway.chains.spec import ChainCreate, ChainRunRequest, ChainVersionCreate, stored
from ai_gateway.errors import GatewayError, NotFoundError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chain_run import ChainRun
from ai_gateway.pipeline.chains import Chains
from ai_gateway.prompts.records import NAME_RULE, PromptRecord, is_name
from ai_gateway.prompts.spec import LabelMove
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.config import RequestLimits
from ai_gateway.streaming.drain import Drain, shutdown_error
from ai_gateway.streaming.sse import DONE, encode_data

CHAIN_BODY_LIMIT = 1024 * 1024
HEADER = "x-gateway-chain"


class ChainsAPI:
    def __init__(
        self,
        catalog: ChainCatalog,
        chains: Chains,
        limits: RequestLimits,
        config: ChainsConfig,
        body: BodyLimit,
        metrics: Metrics,
    ) -> None:
        self._catalog = catalog
        self._chains = chains
        self._limits = limits
        self._config = config
        self._body = body.at_most(CHAIN_BODY_LIMIT)
        self._metrics = metrics

    # -- administration ------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        body = parse_body(ChainCreate, await read_json(request, self._body))
        catalog = self._catalog
        record = await catalog.create(
            body.id, body.description, stored(body.steps), body.variables, body.note
        )
        for label in body.labels:
            record = await catalog.set_label(body.id, label, 1)
        version = await catalog.version(body.id, 1)
        return JSONResponse(
            {**chain_view(record), "version": version_view(version)}, status_code=201
        )

    async def list(self, request: Request) -> Response:
        records = await self._catalog.list()
        return JSONResponse({"object": "list", "data": [chain_view(r) for r in records]})

    async def show(self, request: Request) -> Response:
        chain_id = _chain_id(request)
        record = await self._catalog.current(chain_id)
        version = await self._catalog.version(chain_id, record.latest_version)
        return JSONResponse({**chain_view(record), "version": version_view(version)})

    async def add_version(self, request: Request) -> Response:
        chain_id = _chain_id(request)
        body = parse_body(ChainVersionCreate, await read_json(request, self._body))
        version = await self._catalog.add_version(
            chain_id, stored(body.steps), body.variables, body.note
        )
        record: PromptRecord | None = None
        for label in body.labels:
            record = await self._catalog.set_label(chain_id, label, version.version)
        view: dict[str, Any] = version_view(version)
        if record is not None:
            view["labels"] = chain_view(record)["labels"]
        return JSONResponse(view, status_code=201)

    async def set_label(self, request: Request) -> Response:
        chain_id = _chain_id(request)
        label = str(request.path_params["label"])
        if not is_name(label):
            raise NotFoundError(f"A label name is {NAME_RULE}.", code="chain_label_not_found")
        body = parse_body(LabelMove, await read_json(request, self._body))
        record = await self._catalog.set_label(chain_id, label, body.version)
        return JSONResponse(chain_view(record))

    # -- running -------------------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        chain_id = _chain_id(request)
        body = parse_body(ChainRunRequest, await read_json(request, self._body))
        chain = await self._catalog.resolve(chain_id, body.version, body.label)
        info = RequestInfo.from_scope(request.scope)
        timeout_s = min(body.timeout_s or self._config.timeout_s, self._config.timeout_s)
        run = ChainRun(
            self._chains.chat,
            self._limits,
            chain,
            body.variables,
            info,
            timeout_s,
            self._config.max_steps,
        )
        version = chain.version
        headers = {HEADER: f"{version.prompt_id}@{version.version}"}
        if not body.stream:
            result = await until_drained(run.complete(body.include_intermediate), request)
            return JSONResponse(result, headers={**headers, **route_headers(info)})
        events = run.events(body.include_intermediate)
        # Until the first event the client can still get an HTTP error with its status.
        first = await until_drained(anext(events), request)
        stream = _sse(first, events, lambda exc: self._count_error(request, exc))

        def stopped(drain: Drain) -> GatewayError:
            # The instance's drain ended the run (its steps' records show a cancelled step).
            return shutdown_error(drain.timeout_s)

        return EventStreamResponse(
            stream,
            headers=lambda: {**SSE_HEADERS, **headers},
            on_expire=stopped,
            on_error=lambda exc: self._count_error(request, exc),
            background=BackgroundTask(_close, stream, events),
        )

    def _count_error(self, request: Request, exc: GatewayError) -> None:
        route = matched_route(request.scope)
        self._metrics.observe_error(route.label if route else UNMATCHED, exc.type, exc.code)


Events = AsyncGenerator[JSONObject, None]


async def _sse(
    first: JSONObject, events: Events, count_error: Callable[[GatewayError], None]
) -> AsyncGenerator[bytes, None]:
    try:
        yield encode_data(first)
        async for event in events:
            yield encode_data(event)
    except GatewayError as exc:
        count_error(exc)
        yield encode_data(exc.to_dict())
        return
    finally:
        await events.aclose()
    yield DONE


async def _close(stream: AsyncGenerator[bytes, None], events: Events) -> None:
    await stream.aclose()
    await events.aclose()


def _chain_id(request: Request) -> str:
    chain_id = str(request.path_params["chain_id"])
    if not is_name(chain_id):
        raise NotFoundError(
            f"No chain {chain_id[:64]!r}: a chain id is {NAME_RULE}.", code="chain_not_found"
        )
    return chain_id
