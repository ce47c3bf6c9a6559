"""``/v1/responses``: OpenAI's Responses API, translated onto the routed
chat-completions upstream (``application.protocols.responses``); stored responses
(``store``, ``previous_response_id``, ``GET``/``DELETE``) kept per tenant."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, delete, get, post

from adapters.http.auth import requires
from adapters.http.client_context import asked_context
from adapters.http.content import json_body, strictly
from adapters.http.errors import status_and_body
from adapters.http.generation import Streamed, bounded, generate
from adapters.http.openapi import error_responses
from adapters.http.protocol_wire import ResponseDeleted, ResponseObject, ResponsesRequest
from adapters.http.ratelimit import admitted
from adapters.http.services import Services
from adapters.http.sse import event
from application.access import Generation, GenerationAsk
from application.protocols import responses
from domain.errors import BackendUnavailable, GatewayError, InvalidRequest, NotFound
from domain.principal import Capability, Principal
from ports.response_store import ResponseStore

log = structlog.get_logger("gateway.http")
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class _Typed(msgspec.Struct):
    type: str = "message"


_decode_type = msgspec.json.Decoder(_Typed).decode
_encode = msgspec.json.Encoder().encode


def sse(events: Iterable[responses.Event]) -> bytes:
    return b"".join(event(_encode(payload), payload["type"]) for payload in events)


def _store(services: Services) -> ResponseStore:
    if services.response_store is None:
        raise InvalidRequest("this gateway stores no responses", param="store")
    return services.response_store


async def _keep(
    store: ResponseStore | None,
    principal: Principal,
    response: dict[str, Any],
    conversation: list[dict[str, Any]],
) -> None:
    if store is None:
        return
    try:
        await store.save(
            principal.tenant, response["id"], {"response": response, "messages": conversation}
        )
    except BackendUnavailable as exc:
        # The answer is generated: the client gets it, unstored, rather than an error.
        log.warning("response_not_stored", response_id=response["id"], reason=exc.message)


async def response_events(
    translator: responses.ResponseStream,
    first: bytes,
    chunks: AsyncIterator[bytes],
    close: Callable[[], Awaitable[None]],
    kept: Callable[[dict[str, Any]], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The Responses event stream for the upstream's chunks; a failure once the answer
    started is an ``error`` event (then ``response.failed``)."""
    try:
        yield sse(translator.start())
        yield sse(translator.feed(_decode_object(first)))
        async for payload in chunks:
            events = translator.feed(_decode_object(payload))
            if events:
                yield sse(events)
        finished = translator.finish()
    except (GatewayError, msgspec.DecodeError) as exc:
        _, body = status_and_body(exc if isinstance(exc, GatewayError) else ValueError())
        error = body["error"]
        failed = {**translator.response, "status": "failed",
                  "error": {"code": error.get("code") or "server_error",
                            "message": error["message"]}}  # fmt: skip
        yield event(_encode({"type": "error", "sequence_number": 0, "code": error.get("code"),
                             "message": error["message"], "param": error.get("param")}),
                    "error")  # fmt: skip
        yield event(_encode({"type": "response.failed", "sequence_number": 1,
                             "response": failed}), "response.failed")  # fmt: skip
        return
    finally:
        await close()
    await kept(translator.response)
    yield sse(finished)


async def relayed_events(
    first: bytes, chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The upstream's own Responses events, each named by its type; a failure once the
    answer started is an ``error`` event."""
    try:
        yield event(first, _decode_type(first).type)
        async for payload in chunks:
            yield event(payload, _decode_type(payload).type)
    except (GatewayError, msgspec.DecodeError) as exc:
        _, body = status_and_body(exc if isinstance(exc, GatewayError) else ValueError())
        error = body["error"]
        yield event(_encode({"type": "error", "sequence_number": 0, "code": error.get("code"),
                             "message": error["message"], "param": error.get("param")}),
                    "error")  # fmt: skip
    finally:
        await close()


async def forwarded(
    request: Request[Any, Any, Any],
    services: Services,
    ask: GenerationAsk,
    raw: bytes,
    data: ResponsesRequest,
) -> Response[Any]:
    """The request as the client sent it (validated, its bound within the key's cap)
    to an upstream serving /v1/responses, its answer relayed."""

    def body_for(grant: Generation) -> dict[str, Any]:
        body = _decode_object(raw)
        validated = msgspec.to_builtins(data)
        body.update({k: v for k, v in validated.items() if k in body})
        body.pop("max_output_tokens", None)
        if grant.max_tokens is not None:
            body["max_output_tokens"] = grant.max_tokens
        return body

    outcome = await generate(request, services, ask, body_for, wire="responses")
    if isinstance(outcome, Streamed):
        return outcome.response(relayed_events(outcome.first, outcome.chunks, outcome.close))
    return Response(content=outcome.completion.body, media_type="application/json")


class ResponsesController(Controller):
    path = "/v1/responses"
    tags = ["inference"]

    @post(
        "",
        status_code=200,
        guards=[requires(Capability.CHAT), json_body],
        summary="Create a model response (OpenAI's Responses API)",
        description=(
            "OpenAI's Responses API over the model's chat-completions upstream: `input` "
            "(a string or message, `function_call` and `function_call_output` items), "
            "`instructions`, `max_output_tokens` (within the key's cap), `temperature`, "
            "`top_p`, function `tools` and `tool_choice`, `text.format` (`json_object`, "
            "`json_schema`: forwarded as `response_format`). `reasoning`, `include`, "
            "`truncation`, `service_tier`, `prompt_cache_key`, `client_metadata` are "
            "accepted and not forwarded. `store` (default true) keeps the response for "
            "the key's tenant: "
            "`previous_response_id` continues its conversation, `GET`/`DELETE "
            "/v1/responses/{id}` read and delete it. With `stream: true` the answer is "
            "the Responses event stream (`response.created` ... `response.completed`). "
            "On an upstream listed in GATEWAY_RESPONSES_PASSTHROUGH, a request with "
            "`store: false`, no `previous_response_id` and no memory or RAG is forwarded "
            "as it is and the upstream's answer relayed."
        ),
        responses=error_responses(400, 401, 403, 404, 413, 415, 502, 503, 504),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: ResponsesRequest,
        services: Services,
    ) -> Response[ResponseObject]:
        raw = await request.body()
        data = strictly(raw, ResponsesRequest)
        asked = msgspec.to_builtins(data)
        principal: Principal = request.user
        history: list[dict[str, Any]] = []
        if data.previous_response_id is not None:
            record = await _store(services).get(principal.tenant, data.previous_response_id)
            if record is None:
                raise NotFound(
                    f"no stored response {data.previous_response_id!r}",
                    param="previous_response_id",
                )
            history = list(record["messages"])
        body = responses.chat_request(asked, history)
        store = services.response_store if data.store else None
        ask = GenerationAsk(
            contents=responses.prompt_texts(body),
            model=data.model,
            max_tokens=data.max_output_tokens,
        )
        if (
            not data.store
            and data.previous_response_id is None
            and asked_context(request) is None
            and await services.chat_completions.serves_responses(data.model)
        ):
            return await forwarded(request, services, ask, raw, data)
        response_id, created = responses.new_id("resp"), int(time.time())
        outcome = await generate(request, services, ask, bounded(body))
        if isinstance(outcome, Streamed):

            async def kept(response: dict[str, Any]) -> None:
                conversation = responses.conversation(history, asked, response["output"])
                await _keep(store, principal, response, conversation)

            envelope = responses.envelope(asked, response_id, outcome.stream.model, created)
            translator = responses.ResponseStream(envelope)
            events = response_events(translator, outcome.first, outcome.chunks, outcome.close, kept)
            return outcome.response(events)  # type: ignore[return-value]
        completion = outcome.completion
        answer = responses.response(
            asked, _decode_object(completion.body), response_id, completion.model, created
        )
        conversation = responses.conversation(history, asked, answer["output"])
        await _keep(store, principal, answer, conversation)
        return Response(content=answer, headers=outcome.headers)  # type: ignore[arg-type]

    @get(
        "/{response_id:str}",
        guards=[requires(Capability.CHAT), admitted],
        summary="Retrieve a stored response",
        description="A response stored by this key's tenant (`store: true`); 404 otherwise.",
        responses=error_responses(401, 403, 404),
    )
    async def retrieve(
        self, request: Request[Any, Any, Any], response_id: str, services: Services
    ) -> ResponseObject:
        principal: Principal = request.user
        record = await _store(services).get(principal.tenant, response_id)
        if record is None:
            raise NotFound(f"no stored response {response_id!r}", param="response_id")
        return Response(content=record["response"])  # type: ignore[return-value]

    @delete(
        "/{response_id:str}",
        status_code=200,
        guards=[requires(Capability.CHAT), admitted],
        summary="Delete a stored response",
        description="Deletes a response stored by this key's tenant; 404 when there is none.",
        responses=error_responses(401, 403, 404),
    )
    async def remove(
        self, request: Request[Any, Any, Any], response_id: str, services: Services
    ) -> ResponseDeleted:
        principal: Principal = request.user
        if not await _store(services).delete(principal.tenant, response_id):
            raise NotFound(f"no stored response {response_id!r}", param="response_id")
        return ResponseDeleted(id=response_id)
