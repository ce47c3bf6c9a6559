"""schemathesis against the live gateway's ``/openapi.json``: every documented
operation, fuzzed with valid and invalid data, answers without a 5xx, as documented,
and with OpenAI's error body whenever it refuses.

The gateway is served in process (the real app from the real container): schemathesis'
own client, ``requests``, reaches it through an adapter into the app (``_IntoTheGateway``),
so the requests and the checks are schemathesis' own, with no server process to start.

schemathesis 4.32.5's own pytest loaders do not fit here: ``schema.parametrize()``
needs the schema at import time (the gateway only exists once its fixture ran), and
``schemathesis.pytest.from_fixture`` fails under pytest 9.2 (it writes
``Function._nodeid``, which pytest 9 no longer has). So each operation is a pytest
case that drives schemathesis' public strategy, ``APIOperation.as_strategy``, with
Hypothesis."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import requests
import requests.adapters
import schemathesis
import urllib3
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config._phases import DEFAULT_UNEXPECTED_METHODS
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from adapters.http import protocol_wire, wire
from tests.conftest import FakeUpstream
from tests.e2e.clients import api_client, bearer
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY
from tests.e2e.openai_errors import ERROR_FIELDS
from tests.in_process import InProcessGateway, in_process_gateway

MAX_EXAMPLES = 25  # per operation and mode: ~1000 requests in all
REQUEST_TIMEOUT_S = 10

# Every documented operation, and whether it has an input that can be made invalid (a
# body, or a parameter with a type or bounds). Without one, schemathesis' negative mode
# has nothing to break and Hypothesis reports the test as unsatisfiable; a path
# parameter that is any string cannot be made invalid either.
OPERATIONS = {
    "POST /v1/chat/completions": True,
    "POST /v1/chat": True,
    "GET /v1/models": False,
    "GET /v1/models/{model_id}": False,
    "POST /v1/embeddings": True,
    "POST /v1/rag/search": True,
    "GET /v1/memories": True,
    "POST /v1/memories": True,
    "DELETE /v1/memories": True,
    "GET /v1/memories/{memory_id}": True,
    "PUT /v1/memories/{memory_id}": True,
    "DELETE /v1/memories/{memory_id}": True,
    "POST /v1/memories/search": True,
    "GET /v1/documents": True,
    "POST /v1/documents": True,
    "GET /v1/documents/{document_id}": True,
    "DELETE /v1/documents/{document_id}": False,
    "GET /v1/keys": False,
    "POST /v1/keys": True,
    "GET /v1/keys/{key_id}": False,
    "DELETE /v1/keys/{key_id}": False,
    "GET /v1/keys/{key_id}/usage": True,
    "GET /health": False,
    "GET /health/live": False,
    "GET /health/ready": False,
    "GET /metrics": True,
    "POST /v1/completions": True,
    "POST /v1/messages": True,
    "POST /v1/messages/count_tokens": True,
    "POST /v1/responses": True,
    "GET /v1/responses/{response_id}": False,
    "DELETE /v1/responses/{response_id}": False,
}
# Anthropic's routes answer refusals in Anthropic's shape, as its SDKs read them.
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
ANTHROPIC_ERROR_FIELDS = {"type", "message"}


def key_for(label: str) -> str:
    """The developer key reaches every write route; managing keys needs an admin."""
    return ADMIN_KEY if " /v1/keys" in label else DEVELOPER_KEY


KNOWN_BUGS: dict[tuple[str, GenerationMode], str] = {}


def openai_error_body(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """Every refusal is ``{"error": {message, type, param, code}}`` (Anthropic's
    ``{"type": "error", "error": {type, message}}`` on its routes)."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json")
    body = response.json()
    if case.operation.path in ANTHROPIC_PATHS:
        assert set(body) == {"type", "error"}, body
        assert body["type"] == "error", body
        assert set(body["error"]) == ANTHROPIC_ERROR_FIELDS, body
        assert body["error"]["message"], body
        return
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ERROR_FIELDS, body
    assert body["error"]["message"], body


# content_type_conformance stays off: the SSE answers of the two chat routes and
# /metrics' Prometheus text are not documented media types (reported).
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    openai_error_body,
]


@pytest.fixture(scope="module")
def fuzzed_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """``fake_gateway``'s configuration in a gateway of its own: ~1000 requests from one
    key would spend the budget the other suites share (rate limits are per key and per
    instance), and fuzzed writes (memories, documents, keys) stay out of their data."""
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_UPSTREAM_TIMEOUT_S": "2",
        "GATEWAY_DEFAULT_MODEL": "fake-model",
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("fuzzed")) as gateway:
        yield gateway


class _IntoTheGateway(requests.adapters.HTTPAdapter):
    """``requests``' adapter into the in-process gateway: each request goes whole into
    the app (its lifespan, its loop), the answer comes back as urllib3 would give it
    (raw bytes, decoded by ``requests`` as over a socket)."""

    def __init__(self, gateway: InProcessGateway) -> None:
        super().__init__()
        self._into = gateway.transport()

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        sent = request.body
        content = sent.encode() if isinstance(sent, str) else b"".join(_chunks(sent))
        answer = self._into.handle_request(
            httpx.Request(
                str(request.method), str(request.url),
                headers=list(request.headers.items()), content=content,
            )
        )  # fmt: skip
        try:
            body = b"".join(answer.iter_raw())
        finally:
            answer.close()
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers=urllib3.HTTPHeaderDict(answer.headers.multi_items()),
            status=answer.status_code,
            reason=answer.reason_phrase,
            version=11,
            preload_content=False,
            decode_content=True,
            request_method=request.method,
            request_url=request.url,
        )
        return self.build_response(request, raw)


def _chunks(body: Any) -> list[bytes]:
    if body is None:
        return []
    if isinstance(body, bytes):
        return [body]
    if hasattr(body, "read"):
        return [body.read()]
    return [c.encode() if isinstance(c, str) else bytes(c) for c in body]


@pytest.fixture(scope="module")
def session(fuzzed_gateway: InProcessGateway) -> Iterator[requests.Session]:
    """The ``requests`` session schemathesis sends its cases with."""
    with requests.Session() as session:
        session.mount(fuzzed_gateway.url, _IntoTheGateway(fuzzed_gateway))
        yield session


def openapi_document(gateway: InProcessGateway) -> dict[str, Any]:
    with api_client(gateway, None) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def api_schema(fuzzed_gateway: InProcessGateway) -> Any:
    schema = schemathesis.openapi.from_dict(openapi_document(fuzzed_gateway))
    schema.location = f"{fuzzed_gateway.url}/openapi.json"  # as from_url sets it
    return schema


def cases() -> list[Any]:
    params = []
    for label, negatable in OPERATIONS.items():
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if negatable else [])
        for mode in modes:
            bug = KNOWN_BUGS.get((label, mode))
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(label, mode, marks=marks, id=f"{label}-{mode.value}"))
    return params


def test_every_documented_operation_is_fuzzed(api_schema: Any) -> None:
    documented = {result.ok().label for result in api_schema.get_all_operations()}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), cases())
def test_operation_keeps_its_contract(
    api_schema: Any, session: requests.Session, label: str, mode: GenerationMode
) -> None:
    operation = api_schema.find_operation_by_label(label)
    headers = bearer(key_for(label))

    @given(case=operation.as_strategy(mode, headers=headers))
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None)
    def exchange(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(session=session, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    exchange()


@pytest.mark.parametrize("label", ["POST /v1/chat/completions", "POST /v1/chat"])
def test_streamed_answers_pass_the_same_checks(
    api_schema: Any, session: requests.Session, label: str
) -> None:
    # Streaming is not excluded: the checks read the SSE body as text. Fuzzed bodies
    # with stream: true are mostly refused for another field, so one valid one is sent.
    case = api_schema.find_operation_by_label(label).Case(
        body={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        media_type="application/json",
        headers=bearer(DEVELOPER_KEY),
    )
    response = case.call_and_validate(session=session, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200
    assert response.headers["content-type"][0].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize(
    ("label", "body"),
    [
        ("POST /v1/completions", {"prompt": "hi", "stream": True}),
        ("POST /v1/responses", {"input": "hi", "stream": True}),
        ("POST /v1/messages", {"model": "fake-model", "max_tokens": 8, "stream": True,
                               "messages": [{"role": "user", "content": "hi"}]}),
    ],
)  # fmt: skip
def test_the_client_protocols_streams_pass_the_same_checks(
    api_schema: Any, session: requests.Session, label: str, body: dict[str, Any]
) -> None:
    case = api_schema.find_operation_by_label(label).Case(
        body=body, media_type="application/json", headers=bearer(DEVELOPER_KEY)
    )
    response = case.call_and_validate(session=session, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200
    assert response.headers["content-type"][0].startswith("text/event-stream")
    assert response.text.count("data: ") >= 3


def test_every_documented_refusal_is_openai_error_body(fuzzed_gateway: InProcessGateway) -> None:
    document = openapi_document(fuzzed_gateway)
    error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
    anthropic_schema = {"$ref": "#/components/schemas/AnthropicError"}
    wrong = [
        f"{method.upper()} {path} {status}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation.get("responses", {}).items()
        if int(status) >= 400
        and response.get("content", {}).get("application/json", {}).get("schema")
        != (anthropic_schema if path in ANTHROPIC_PATHS else error_schema)
    ]
    assert wrong == []


BOUNDS = (
    *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    *("minLength", "maxLength", "minItems", "maxItems"),
)


def bounds_of(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's bounds, its union's branches included."""
    found: dict[str, Any] = {}
    for part in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        found.update({key: part[key] for key in BOUNDS if key in part})
    return found


def test_every_enforced_bound_is_documented(fuzzed_gateway: InProcessGateway) -> None:
    # What the gateway enforces is msgspec's reading of the wire structs; a bound the
    # document leaves out (Litestar drops a bound of 0 on an optional field) makes
    # clients, and schemathesis' positive mode, take a refused value for valid.
    structs = [
        value
        for module in (wire, protocol_wire)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, msgspec.Struct)
    ]
    _, enforced = msgspec.json.schema_components(structs)
    document = openapi_document(fuzzed_gateway)
    served = document["components"]["schemas"]
    missing = [
        f"{name}.{field}: {key}={value}"
        for name, schema in enforced.items()
        if name in served
        for field, declared in schema.get("properties", {}).items()
        for key, value in bounds_of(declared).items()
        if bounds_of(served[name]["properties"][field]).get(key) != value
    ]
    assert missing == []
    for name in ("ChatCompletionRequest", "UnifiedChatIn"):
        properties = served[name]["properties"]
        assert bounds_of(properties["temperature"]) == {"minimum": 0, "maximum": 2}
        assert bounds_of(properties["top_p"]) == {"minimum": 0, "maximum": 1}


# The methods schemathesis 4 sends to every path when checking that undocumented ones
# are refused (its coverage phase), plus HEAD and a method nobody defines.
EVERY_METHOD = sorted({m.upper() for m in DEFAULT_UNEXPECTED_METHODS} | {"HEAD", "FOO"})


@pytest.mark.parametrize("key", [ADMIN_KEY, None], ids=["admin-key", "no-key"])
def test_every_method_on_every_path_is_refused_cleanly(
    fuzzed_gateway: InProcessGateway, key: str | None
) -> None:
    """An undocumented method is a 405 naming the allowed ones (``Allow``) in OpenAI's
    error body; ``OPTIONS`` is answered, key or not: 204 with ``Allow``."""
    document = openapi_document(fuzzed_gateway)
    wrong = []
    with api_client(fuzzed_gateway, key, timeout=10) as client:
        for path, operations in document["paths"].items():
            documented = {method.upper() for method in operations}
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            for method in EVERY_METHOD:
                if method in documented:
                    continue
                response = client.request(method, concrete)
                allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
                expected = 204 if method == "OPTIONS" else 405
                if response.status_code != expected or not documented <= allowed:
                    wrong.append(f"{method} {path}: {response.status_code} allow={allowed}")
                elif expected == 405 and method != "HEAD":
                    body = response.json()
                    if path in ANTHROPIC_PATHS:
                        if body.get("type") != "error" or (
                            set(body["error"]) != ANTHROPIC_ERROR_FIELDS
                        ):
                            wrong.append(f"{method} {path}: {body}")
                    elif set(body) != {"error"} or set(body["error"]) != ERROR_FIELDS:
                        wrong.append(f"{method} {path}: {body}")
    assert wrong == []
