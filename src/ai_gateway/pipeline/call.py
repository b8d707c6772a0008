"""The last stage: route the request and call the provider (routing/router.py picks each
attempt's deployment: strategy, circuit breakers, context window, retries, fallbacks, hedging;
pipeline/attempts.py instruments each attempt), then measure what the answer used.

A stream is opened up to its first real chunk, so that until then every failure is a normal
error, retried and failed over like any other; after it, a failure is raised from the stream
(the client has a 200: it gets an error event) and counts against the deployment's circuit. A
stream that ends without the provider's usage (cut by the client or the upstream) is measured
from what it streamed, so that it is never free.
"""

from __future__ import annotations

from ai_gateway.errors import GatewayError, UpstreamError
from ai_gateway.pipeline.attempts import Attempts, OpenStream
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.charges import Charges
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind, Outcome
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.deployments import Deployment
from ai_gateway.routing.request import RouteRequest, Trace
from ai_gateway.routing.router import Router
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.usage.recorder import UsageRecorder


class Call:
    def __init__(
        self, router: Router, attempts: Attempts, charges: Charges, recorder: UsageRecorder
    ) -> None:
        self._router = router
        self._attempts = attempts
        self._charges = charges
        self._recorder = recorder

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        info = exchange.info
        self._charges.check_request(exchange.model, info)
        info.trace = Trace(requested=exchange.model)
        if exchange.kind is Kind.EMBEDDINGS:
            return await self._embeddings(exchange)
        if exchange.stream:
            return await self._stream(exchange)
        return await self._complete(exchange)

    async def _complete(self, exchange: Exchange) -> JSONObject:
        chat, info = exchange.chat, exchange.info

        async def attempt(deployment: Deployment, body: JSONObject) -> JSONObject:
            self._charges.check_attempt(deployment, info)
            request = _with_body(chat, body, exchange, deployment)
            return await self._attempts.chat(deployment, request, info)

        route = RouteRequest(
            model=exchange.model,
            body=chat.body,
            call=attempt,
            context_strategy=chat.parsed.context_strategy,
            tokens_of=_total_tokens,
            reach=self._charges.reach(info),
        )
        assert info.trace is not None
        result = await self._router.run(route, info.trace)
        self._measured(exchange, result.get("usage"))
        return result

    async def _embeddings(self, exchange: Exchange) -> JSONObject:
        request, info = exchange.request, exchange.info
        assert isinstance(request, EmbeddingsCall)

        async def attempt(deployment: Deployment, body: JSONObject) -> JSONObject:
            self._charges.check_attempt(deployment, info)
            return await self._attempts.embeddings(deployment, request, info)

        route = RouteRequest(
            model=exchange.model, body=request.body, call=attempt, reach=self._charges.reach(info)
        )
        assert info.trace is not None
        result = await self._router.run(route, info.trace)
        self._measured(exchange, result.get("usage"))
        return result

    async def _stream(self, exchange: Exchange) -> Chunks:
        chat, info = exchange.chat, exchange.info

        async def attempt(deployment: Deployment, body: JSONObject) -> OpenStream:
            self._charges.check_attempt(deployment, info)
            request = _with_body(chat, body, exchange, deployment)
            return await self._attempts.open_stream(deployment, request, info)

        async def discard(opened: OpenStream) -> None:  # a losing hedge
            await opened.close(completed=False)

        route = RouteRequest(
            model=exchange.model,
            body=chat.body,
            call=attempt,
            context_strategy=chat.parsed.context_strategy,
            stream=True,
            discard=discard,
            reach=self._charges.reach(info),
        )
        assert info.trace is not None
        opened = await self._router.run(route, info.trace)
        self._attempts.label(opened.deployment, info)  # the winner's, when hedged
        return self._relay(exchange, opened)

    async def _relay(self, exchange: Exchange, opened: OpenStream) -> Chunks:
        """The stream's chunks, as the upstream sent them (usage included), measured when it
        ends however it ends."""
        info, deployment = exchange.info, opened.deployment
        usage: object = None
        failure: GatewayError | None = None
        completed = False
        # Counts what is streamed, measured when no usage arrives (a client or upstream cut).
        tally = self._recorder.tally(info, deployment.provider, deployment.model, opened.body)
        try:
            for chunk in opened.head:
                opened.observe(chunk)
                if tally is not None:
                    tally.feed(chunk)
                usage = chunk.get("usage") or usage
                yield chunk
            if opened.rest is not None:
                async for chunk in opened.rest:
                    opened.observe(chunk)
                    if tally is not None:
                        tally.feed(chunk)
                    usage = chunk.get("usage") or usage
                    yield chunk
            completed = True
        except GatewayError as exc:
            failure = exc
            if isinstance(exc, UpstreamError):
                self._attempts.failed(deployment, info, exc)
            await self._router.stream_failed(deployment, exc)  # the circuit breaker's count
            raise
        finally:
            await opened.close(failure, completed=completed)
            exchange.ttft_s = opened.ttft_s
            if not usage and tally is not None:
                usage = tally.usage()
                exchange.usage_estimated = True
                opened.metrics.observe_usage(info.model, deployment.provider, usage)
            self._measured(exchange, usage)

    async def embed(self, model: str, text: str) -> list[float]:
        """The embedding of `text` with `model`, routed like any embeddings request (for the
        semantic cache; not recorded as a request of its own)."""
        return (await self.embed_many(model, [text], "semantic-cache"))[0]

    async def embed_many(
        self, model: str, texts: list[str], purpose: str = "rag"
    ) -> list[list[float]]:
        """The embeddings of `texts` with `model`, in order, routed like any embeddings request
        (for the gateway's own use: the semantic cache, RAG; not recorded as requests)."""
        info = RequestInfo(request_id=purpose)
        body = {"model": model, "input": texts}
        request = EmbeddingsCall(body=body, parsed=EmbeddingsRequest.model_validate(body))
        exchange = Exchange(Kind.EMBEDDINGS, request, info, model, (model,))
        info.trace = Trace(requested=model)
        result = await self._embeddings(exchange)
        data = sorted(result["data"], key=lambda item: item["index"])
        vectors = []
        for item in data:
            vector = item["embedding"]
            if not isinstance(vector, list):
                raise TypeError("the embedding model did not answer with a list of floats")
            vectors.append([float(x) for x in vector])
        if len(vectors) != len(texts):
            raise TypeError("the embedding model answered with a different number of vectors")
        return vectors

    def _measured(self, exchange: Exchange, usage: object) -> None:
        exchange.usage = usage
        self._recorder.measure(exchange.info, usage)


def _total_tokens(result: JSONObject) -> int | None:
    usage = result.get("usage")
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else None


def _with_body(
    request: ChatRequest, body: JSONObject, exchange: Exchange, deployment: Deployment
) -> ChatRequest:
    """The request as one attempt sends it: unchanged, or with the router's truncated prompt;
    with the client's native body, when it sent one (a 400 when this deployment's provider
    cannot take something in it: providers/native.py)."""
    native = exchange.native
    if native is not None:
        refusal = native.refusal(deployment.provider)
        if refusal is not None:
            raise refusal
        parsed = request.parsed
        if body is not request.body:
            parsed = ChatCompletionRequest.model_validate(body)
        return ChatRequest(body=body, parsed=parsed, native=native)
    if body is request.body:
        return request
    return ChatRequest(body=body, parsed=ChatCompletionRequest.model_validate(body))
