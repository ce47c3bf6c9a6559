"""Hostile input against a real gateway: malformed headers, deep JSON, unicode edge
cases, user ids that try to reach someone else's memories, out-of-range numbers,
wrong types, method overrides and path traversal. The gateway refuses with a 4xx and
OpenAI's error body (or the HTTP server refuses a request it cannot parse), never
answers 5xx, never hangs, and keeps serving."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FakeUpstream, GatewayProcess
from tests.e2e.clients import CHAT_PATH, api_client
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

SOCKET_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 1_048_576  # GATEWAY_MAX_BODY_BYTES' default, which fake_gateway keeps
CHAT_ROUTES = [CHAT_PATH, "/v1/chat"]
ECHO = "__echo__"  # the fake upstream answers with the request body it received
JSON_TYPE = {"Content-Type": "application/json"}


# --- raw HTTP: what httpx refuses to send ---------------------------------------------


def raw_exchange(gateway: GatewayProcess, request: bytes) -> httpx.Response:
    """Sends ``request`` byte for byte and reads until the server closes; a server that
    hangs fails the test on the socket timeout."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = [line.partition(":") for line in lines]
    headers = [(name.strip(), value.strip()) for name, _, value in fields]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=content)


def raw_request(method: str, target: str, *header_lines: bytes, key: str = DEVELOPER_KEY) -> bytes:
    auth = [f"Authorization: Bearer {key}".encode()] if key else []
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1", *auth, *header_lines]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def assert_refused(response: httpx.Response) -> None:
    """A 4xx with OpenAI's error body, or the HTTP server's own bare 400/431 for a
    request it will not parse."""
    if response.status_code in (400, 431) and not response.content:
        return
    assert 400 <= response.status_code < 500, response.text
    assert_openai_error(response, response.status_code)


def assert_alive(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.url}/health/live", timeout=SOCKET_TIMEOUT_S).status_code == 200


# --- headers --------------------------------------------------------------------------

# The Authorization line as sent, and the status expected (None: any clean refusal).
AUTHORIZATION_LINES = {
    "huge-64kb": (b"Authorization: Bearer " + b"a" * 65536, None),
    "huge-after-a-valid-key": (
        f"Authorization: Bearer {STANDARD_KEY}".encode() + b"a" * 65536,
        None,
    ),
    "bearer-alone": (b"Authorization: Bearer", 401),
    "bearer-and-spaces": (b"Authorization: Bearer   ", 401),
    "tab-instead-of-space": (f"Authorization: Bearer\t{STANDARD_KEY}".encode(), 401),
    "tabs-only": (b"Authorization: \t\t", 401),
    "unicode": ("Authorization: Bearer ключ-🔑-\u202e".encode(), 401),
    "nul-byte-after-a-valid-key": (
        f"Authorization: Bearer {STANDARD_KEY}".encode() + b"\x00",
        None,
    ),
    "non-utf8": (b"Authorization: Bearer \xff\xfe\xfd", 401),
    "latin1-after-a-valid-key": (f"Authorization: Bearer {STANDARD_KEY}".encode() + b"\xe9", 401),
    "cr-inside-the-value": (f"Authorization: Bearer {STANDARD_KEY}".encode() + b"\rX: y", None),
    "no-scheme": (f"Authorization: {STANDARD_KEY}".encode(), 401),
    "basic-scheme": (b"Authorization: Basic c2stdGVzdC1rZXktMTIzOg==", 401),
    "two-credentials-in-one": (f"Authorization: Bearer nope, Bearer {STANDARD_KEY}".encode(), 401),
}


@pytest.mark.parametrize(("line", "status"), AUTHORIZATION_LINES.values(), ids=AUTHORIZATION_LINES)
def test_malformed_authorization_is_refused(
    fake_gateway: GatewayProcess, line: bytes, status: int | None
) -> None:
    response = raw_exchange(fake_gateway, raw_request("GET", "/v1/models", line, key=""))
    if status is None:
        assert_refused(response)
    else:
        assert_openai_error(response, status)
        assert response.headers["www-authenticate"] == "Bearer"
    assert_alive(fake_gateway)


def test_a_thousand_headers_are_refused(fake_gateway: GatewayProcess) -> None:
    many = [b"X-Filler-%d: %s" % (n, b"v" * 64) for n in range(1000)]
    response = raw_exchange(fake_gateway, raw_request("GET", "/v1/models", *many))
    assert_refused(response)
    assert_alive(fake_gateway)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(("nope", STANDARD_KEY), id="invalid-then-valid"),
        pytest.param(
            (STANDARD_KEY, "nope"),
            id="valid-then-invalid",
        ),
        pytest.param(
            (STANDARD_KEY, ADMIN_KEY),
            id="two-valid-keys",
        ),
    ],
)
def test_duplicate_authorization_headers_are_refused(
    fake_gateway: GatewayProcess, keys: tuple[str, str]
) -> None:
    lines = [f"Authorization: Bearer {key}".encode() for key in keys]
    response = raw_exchange(fake_gateway, raw_request("GET", "/v1/models", *lines, key=""))
    assert_openai_error(response, 401)


# --- deeply nested JSON ---------------------------------------------------------------

# Each JSON route, with "@" where a value goes: in a documented field, or in a field
# the gateway does not know (which /v1/chat/completions forwards untouched).
JSON_ROUTES = {
    "chat-completions": ("POST", CHAT_PATH, '{"messages":[{"role":"user","content":@}]}'),
    "unified-chat": ("POST", "/v1/chat", '{"messages":[{"role":"user","content":@}]}'),
    "memories-add": ("POST", "/v1/memories", '{"user_id":"nested","text":@}'),
    "memories-update": ("PUT", "/v1/memories/mem-nested", '{"user_id":"nested","text":@}'),
    "memories-search": ("POST", "/v1/memories/search", '{"user_id":"nested","query":@}'),
    "rag-search": ("POST", "/v1/rag/search", '{"query":@}'),
    "embeddings": ("POST", "/v1/embeddings", '{"input":@}'),
    "documents": ("POST", "/v1/documents", '{"source":"nested.md","text":@}'),
}
DEPTH = 100_000


def with_value(template: str, value: bytes, *, unknown_field: bool) -> bytes:
    if unknown_field:
        template = template.replace("@", '"hi"')[:-1] + ',"x_unknown":@}'
    before, after = template.encode().split(b"@")
    return before + value + after


def deep_json_cases() -> list[Any]:
    cases = []
    for name, (method, path, template) in JSON_ROUTES.items():
        for unknown_field in (False, True):
            # /v1/documents decodes into its struct at once, which stops at the first
            # "[" where text must be a string; every other route (and /v1/documents
            # skipping an unknown field) walks the whole nesting first.
            marks: list[Any] = []
            where = "unknown-field" if unknown_field else "known-field"
            cases.append(
                pytest.param(
                    method, path, template, unknown_field, marks=marks, id=f"{name}-{where}"
                )
            )
    return cases


@pytest.mark.parametrize(("method", "path", "template", "unknown_field"), deep_json_cases())
def test_deeply_nested_json_is_refused(
    fake_gateway: GatewayProcess, method: str, path: str, template: str, unknown_field: bool
) -> None:
    body = with_value(template, b"[" * DEPTH + b"]" * DEPTH, unknown_field=unknown_field)
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.request(method, path, content=body, headers=JSON_TYPE)
    assert response.status_code in (400, 413), response.text
    assert_openai_error(response, response.status_code)
    assert_alive(fake_gateway)


# --- unicode --------------------------------------------------------------------------

FORWARDED_TEXTS = {
    "emoji-and-zwj-sequences": "😀 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷",
    "rtl-and-bidi-overrides": "שלום עולם \u202eabc\u202c مرحبا",
    "u0000": "before\u0000after",
    "combining-characters": "e" + "\u0301" * 5000,
    "bom-and-noncharacters": "\ufeff\uffff\ufffe\U0010ffff",
    "zero-width": "a\u200bb\u200dc\u2060d",
}


def forwarded_contents(response: httpx.Response) -> list[str]:
    """The message contents the fake upstream received (its ``__echo__`` answer)."""
    assert response.status_code == 200, response.text
    received = json.loads(response.json()["choices"][0]["message"]["content"])
    return [m["content"] for m in received["messages"]]


@pytest.mark.parametrize("path", CHAT_ROUTES)
@pytest.mark.parametrize("text", FORWARDED_TEXTS.values(), ids=FORWARDED_TEXTS)
def test_unicode_content_is_forwarded_intact(
    fake_gateway: GatewayProcess, path: str, text: str
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": ECHO + text}]}
    if path == "/v1/chat":
        body["store_memory"] = False
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, json=body)
    assert ECHO + text in forwarded_contents(response)


# Raw JSON string contents: escapes JSON allows but UTF-8 cannot carry, and a control
# character JSON forbids unescaped.
CLEANLY_HANDLED = {
    "lone-high-surrogate": rb"x\ud800y",
    "lone-low-surrogate": rb"x\udc00y",
    "high-surrogate-at-the-end": rb"x\ud800",
    "reversed-surrogate-pair": rb"\ude00\ud83d",
    "raw-nul-byte": b"a\x00b",
}


@pytest.mark.parametrize("path", CHAT_ROUTES)
@pytest.mark.parametrize("escaped", CLEANLY_HANDLED.values(), ids=CLEANLY_HANDLED)
def test_unencodable_content_is_forwarded_or_refused(
    fake_gateway: GatewayProcess, path: str, escaped: bytes
) -> None:
    body = b'{"messages":[{"role":"user","content":"' + escaped + b'"}]}'
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, content=body, headers=JSON_TYPE)
    if response.status_code != 200:
        assert_openai_error(response, 400)


# Beyond the plain invalid byte every route is tested with below.
NOT_UTF8 = {"overlong-slash": b"\xc0\xaf", "encoded-surrogate": b"\xed\xa0\x80"}


@pytest.mark.parametrize("sequence", NOT_UTF8.values(), ids=NOT_UTF8)
def test_chat_content_that_is_not_utf8_is_400(
    fake_gateway: GatewayProcess, sequence: bytes
) -> None:
    body = b'{"messages":[{"role":"user","content":"a' + sequence + b'b"}]}'
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(CHAT_PATH, content=body, headers=JSON_TYPE)
    assert_openai_error(response, 400)


@pytest.mark.parametrize(("method", "path", "template"), JSON_ROUTES.values(), ids=JSON_ROUTES)
def test_a_json_body_that_is_not_utf8_is_400(
    fake_gateway: GatewayProcess, method: str, path: str, template: str
) -> None:
    body = with_value(template, b'"\xff"', unknown_field=False)
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.request(method, path, content=body, headers=JSON_TYPE)
    assert_openai_error(response, 400)


def four_byte_body(path: str, chars: int) -> bytes:
    fields = ',"store_memory":false,"use_memory":false,"use_rag":false' if path != CHAT_PATH else ""
    content = (ECHO + "😀" * chars).encode()
    return b'{"messages":[{"role":"user","content":"' + content + b'"}]' + fields.encode() + b"}"


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_a_body_of_four_byte_characters_up_to_the_limit_is_forwarded(
    fake_gateway: GatewayProcess, path: str
) -> None:
    room = MAX_BODY_BYTES - len(four_byte_body(path, 0))
    body = four_byte_body(path, room // 4)
    assert MAX_BODY_BYTES - 4 < len(body) <= MAX_BODY_BYTES
    # The admin key: its token budget is the largest, and other suites rarely use it.
    with api_client(fake_gateway, ADMIN_KEY, timeout=60) as client:
        response = client.post(path, content=body, headers=JSON_TYPE)
    assert ECHO + "😀" * (room // 4) in forwarded_contents(response)


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_a_megabyte_of_four_byte_characters_is_413(fake_gateway: GatewayProcess, path: str) -> None:
    body = four_byte_body(path, MAX_BODY_BYTES // 4)
    with api_client(fake_gateway, ADMIN_KEY, timeout=60) as client:
        response = client.post(path, content=body, headers=JSON_TYPE)
    assert_openai_error(response, 413, code="request_too_large")


# --- user ids that try to reach someone else's memories --------------------------------

HOSTILE_USER_IDS = [
    "*", "%", "_", ".*", "victim*", "vic%", "' OR 1=1 --", "' OR '1'='1",
    '{"$ne": null}', '{"$regex": ".*"}', "alice\u0000", "victim\u0000", "VICTIM",
    "victim ", " victim", "victim\n", "../victim", "victim/..", "default/victim",
    "default:victim",
]  # fmt: skip


def remember(client: httpx.Client, user_id: str, text: str) -> dict[str, Any]:
    response = client.post("/v1/memories", json={"user_id": user_id, "text": text})
    assert response.status_code == 201, response.text
    return dict(response.json())


def seen_by(client: httpx.Client, user_id: str, query: str) -> list[httpx.Response]:
    """What ``user_id`` gets from listing, searching and chatting. The chat's budget is
    the largest, so that its memory retrieval runs to the end even on a slow machine."""
    chat = {
        "messages": [{"role": "user", "content": query}],
        "user_id": user_id,
        "store_memory": False,
        "use_rag": False,
        "latency_budget_ms": 60_000,
    }
    answers = [
        client.get("/v1/memories", params={"user_id": user_id}),
        client.post("/v1/memories/search", json={"user_id": user_id, "query": query}),
        client.post("/v1/chat", json=chat),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
    assert answers[2].json()["metadata"]["degraded"] == [], answers[2].text
    return answers


@pytest.fixture(scope="module")
def victim(fake_gateway: GatewayProcess) -> Iterator[dict[str, Any]]:
    """A memory of user "victim": its text holds a marker nobody else may see."""
    marker = uuid.uuid4().hex
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        yield remember(client, "victim", f"The vault code of the victim is {marker}.")


def test_the_victim_sees_her_own_memory(
    fake_gateway: GatewayProcess, victim: dict[str, Any]
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        answers = seen_by(client, "victim", "What is the vault code?")
    assert all(victim["text"] in answer.text for answer in answers)


@pytest.mark.parametrize("user_id", HOSTILE_USER_IDS)
def test_a_hostile_user_id_neither_sees_nor_deletes_the_victims_memory(
    fake_gateway: GatewayProcess, victim: dict[str, Any], user_id: str
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        answers = seen_by(client, user_id, "What is the vault code?")
        by_id = client.get(f"/v1/memories/{victim['id']}", params={"user_id": user_id})
        delete_one = client.delete(f"/v1/memories/{victim['id']}", params={"user_id": user_id})
        forget = client.delete("/v1/memories", params={"user_id": user_id})
        still_there = client.get(f"/v1/memories/{victim['id']}", params={"user_id": "victim"})
    assert all(victim["text"] not in answer.text for answer in answers)
    assert all(m["user_id"] == user_id for m in answers[0].json()["data"])
    assert_openai_error(by_id, 404, param="memory_id")
    assert_openai_error(delete_one, 404, param="memory_id")
    assert forget.status_code == 200, forget.text
    assert still_there.status_code == 200, still_there.text


def user_id_requests(user_id: Any) -> dict[str, tuple[str, str, dict[str, Any]]]:
    chat = {"messages": [{"role": "user", "content": "hi"}], "user_id": user_id}
    return {
        "list": ("GET", "/v1/memories", {"params": {"user_id": user_id}}),
        "forget": ("DELETE", "/v1/memories", {"params": {"user_id": user_id}}),
        "add": ("POST", "/v1/memories", {"json": {"user_id": user_id, "text": "x"}}),
        "search": ("POST", "/v1/memories/search", {"json": {"user_id": user_id, "query": "x"}}),
        "chat": ("POST", "/v1/chat", {"json": chat}),
    }


@pytest.mark.parametrize("user_id", ["", "u" * 300], ids=["empty", "300-chars"])
def test_an_empty_or_overlong_user_id_is_400_naming_it(
    fake_gateway: GatewayProcess, user_id: str
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        for method, path, request in user_id_requests(user_id).values():
            assert_openai_error(client.request(method, path, **request), 400, param="user_id")


@pytest.mark.parametrize("user_id", [{"$ne": None}, ["victim"], 1, True], ids=str)
def test_a_user_id_that_is_not_a_string_is_400_naming_it(
    fake_gateway: GatewayProcess, user_id: Any
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        for name in ("add", "search", "chat"):
            method, path, request = user_id_requests(user_id)[name]
            assert_openai_error(client.request(method, path, **request), 400, param="user_id")


@pytest.mark.parametrize("path", ["/v1/memories", "/v1/memories/mem-1"])
def test_a_missing_user_id_is_400_naming_it(fake_gateway: GatewayProcess, path: str) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        assert_openai_error(client.get(path), 400, param="user_id")


ACME_KEY, GLOBEX_KEY = "sk-hostile-acme-1", "sk-hostile-globex-1"


@pytest.fixture(scope="module")
def two_tenants(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """A gateway whose two keys belong to the tenants acme and globex (served in
    process: nothing here needs a socket)."""
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "API_KEYS": f"{ACME_KEY}:developer:acme,{GLOBEX_KEY}:developer:globex",
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("tenants")) as gateway:
        yield gateway


def test_no_user_id_reaches_another_tenants_memories(two_tenants: InProcessGateway) -> None:
    with api_client(two_tenants, ACME_KEY) as acme:
        memory = remember(acme, "victim", f"Acme's vault code is {uuid.uuid4().hex}.")
        assert all(memory["text"] in answer.text for answer in seen_by(acme, "victim", "vault"))
    with api_client(two_tenants, GLOBEX_KEY) as globex:
        for user_id in ["victim", "acme/victim", "acme:victim", "acme", "*", "../acme/victim"]:
            answers = seen_by(globex, user_id, "What is the vault code?")
            assert all(memory["text"] not in answer.text for answer in answers), user_id
            by_id = globex.get(f"/v1/memories/{memory['id']}", params={"user_id": user_id})
            assert_openai_error(by_id, 404, param="memory_id")
            assert globex.delete("/v1/memories", params={"user_id": user_id}).status_code == 200
    with api_client(two_tenants, ACME_KEY) as acme:
        still_there = acme.get(f"/v1/memories/{memory['id']}", params={"user_id": "victim"})
    assert still_there.status_code == 200, still_there.text


# --- numbers out of range -------------------------------------------------------------


def chat_with(field: str, token: bytes) -> bytes:
    """A chat body whose ``field`` is the JSON ``token`` exactly as written."""
    return b'{"messages":[{"role":"user","content":"hi"}],"' + field.encode() + b'":' + token + b"}"


@pytest.mark.parametrize("token", [b"1e400", b"-1e400"], ids=bytes.decode)
@pytest.mark.parametrize("field", ["temperature", "max_tokens"])
@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_a_number_beyond_float64_is_400_naming_the_field(
    fake_gateway: GatewayProcess, path: str, field: str, token: bytes
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, content=chat_with(field, token), headers=JSON_TYPE)
    assert_openai_error(response, 400, param=field)


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_an_integer_of_400_digits_is_400_naming_the_field_without_echoing_it(
    fake_gateway: GatewayProcess, path: str
) -> None:
    huge = b"1" + b"0" * 400
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, content=chat_with("max_tokens", huge), headers=JSON_TYPE)
    error = assert_openai_error(response, 400, param="max_tokens")
    assert "0" * 20 not in error["message"]


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_negative_zero_is_a_valid_temperature_but_not_a_valid_max_tokens(
    fake_gateway: GatewayProcess, path: str
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        temperature = client.post(path, content=chat_with("temperature", b"-0"), headers=JSON_TYPE)
        max_tokens = client.post(path, content=chat_with("max_tokens", b"-0"), headers=JSON_TYPE)
    assert temperature.status_code == 200, temperature.text
    assert_openai_error(max_tokens, 400, param="max_tokens")


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"], ids=bytes.decode)
@pytest.mark.parametrize("field", ["temperature", "max_tokens"])
@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_a_bare_nan_or_infinity_is_400_malformed_json(
    fake_gateway: GatewayProcess, path: str, field: str, token: bytes
) -> None:
    # Not JSON at all, so there is no field to name: OpenAI answers these with
    # param null too ("We could not parse the JSON body of your request").
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, content=chat_with(field, token), headers=JSON_TYPE)
    error = assert_openai_error(response, 400)
    assert "malformed" in error["message"].lower()


# --- wrong JSON types -----------------------------------------------------------------

# A value of a JSON type each documented field does not accept (and that no lax
# decoding turns into one it does: see test_a_number_or_boolean_in_disguise_is_400).
WRONG_TYPES: dict[str, dict[str, Any]] = {
    CHAT_PATH: {
        "messages": "hi", "model": 1, "max_tokens": "many", "max_completion_tokens": [],
        "temperature": "hot", "top_p": [], "stop": 1, "stream": "yes", "stream_options": "x",
        "user": 1, "n": "two", "seed": 1.5, "presence_penalty": "x", "frequency_penalty": [],
        "logit_bias": [], "logprobs": "x", "top_logprobs": "x", "tools": {}, "tool_choice": 1,
        "response_format": "json",
    },
    "/v1/chat": {
        "messages": {}, "model": None, "user_id": 1, "use_memory": "yes", "use_rag": "yes",
        "store_memory": [], "rag_k": "three", "memory_limit": 1.5, "max_tokens": "many",
        "temperature": "hot", "top_p": None, "stream": "yes", "latency_budget_ms": "fast",
        "rag_filter": [],
    },
}  # fmt: skip
WRONG_MESSAGE_TYPES: dict[str, dict[str, Any]] = {
    CHAT_PATH: {"role": 1, "content": 1, "name": 1, "tool_calls": "x", "tool_call_id": 1},
    "/v1/chat": {"role": 1, "content": None},
}


def documented_fields(gateway: GatewayProcess, path: str) -> tuple[set[str], set[str]]:
    """The request's documented fields, and those of one of its messages."""
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    request = schemas[body["schema"]["$ref"].rpartition("/")[2]]
    message = schemas[request["properties"]["messages"]["items"]["$ref"].rpartition("/")[2]]
    return set(request["properties"]), set(message["properties"])


@pytest.mark.parametrize("path", CHAT_ROUTES)
def test_every_documented_field_has_a_wrong_type_case(
    fake_gateway: GatewayProcess, path: str
) -> None:
    assert documented_fields(fake_gateway, path) == (
        set(WRONG_TYPES[path]),
        set(WRONG_MESSAGE_TYPES[path]),
    )


def wrong_type_cases() -> list[Any]:
    hi = {"role": "user", "content": "hi"}
    cases = []
    for path, fields in WRONG_TYPES.items():
        for field, value in fields.items():
            body = {"messages": [hi], field: value}
            cases.append(pytest.param(path, body, field, id=f"{path}-{field}"))
        for field, value in WRONG_MESSAGE_TYPES[path].items():
            body = {"messages": [{**hi, field: value}]}
            param = f"messages[0].{field}"
            cases.append(pytest.param(path, body, param, id=f"{path}-{param}"))
    return cases


@pytest.mark.parametrize(("path", "body", "param"), wrong_type_cases())
def test_a_field_of_the_wrong_type_is_400_naming_it(
    fake_gateway: GatewayProcess, path: str, body: dict[str, Any], param: str
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, json=body)
    assert_openai_error(response, 400, param=param)


# --- method overrides and path traversal ----------------------------------------------

OVERRIDE_HEADERS = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]


@pytest.mark.parametrize("header", OVERRIDE_HEADERS)
def test_a_method_override_header_does_nothing(
    fake_gateway: GatewayProcess, victim: dict[str, Any], header: str
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        listed = client.get(
            "/v1/memories", params={"user_id": "victim"}, headers={header: "DELETE"}
        )
        chat = client.post(
            CHAT_PATH,
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={header: "GET"},
        )
        still_there = client.get(f"/v1/memories/{victim['id']}", params={"user_id": "victim"})
    with api_client(fake_gateway, STANDARD_KEY) as standard:
        not_a_write = standard.get("/v1/documents", headers={header: "POST"})
    assert victim["text"] in listed.text
    assert chat.json()["object"] == "chat.completion"
    assert still_there.status_code == 200, still_there.text
    assert not_a_write.status_code == 200, not_a_write.text
    assert not_a_write.json()["object"] == "list"


def test_a_method_query_parameter_does_nothing(
    fake_gateway: GatewayProcess, victim: dict[str, Any]
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        listed = client.get("/v1/memories", params={"user_id": "victim", "_method": "DELETE"})
        still_there = client.get(f"/v1/memories/{victim['id']}", params={"user_id": "victim"})
    assert victim["text"] in listed.text
    assert still_there.status_code == 200, still_there.text


TRAVERSALS = [
    ("GET", "/v1/documents/../../etc/passwd"),
    ("DELETE", "/v1/documents/../../etc/passwd"),
    ("DELETE", "/v1/documents/..%2f..%2fetc%2fpasswd"),
    ("DELETE", "/v1/documents/%2e%2e/%2e%2e/etc/passwd"),
    ("GET", "/v1/memories/%2e%2e"),
    ("GET", "/v1/memories/%2e%2e?user_id=victim"),
    ("DELETE", "/v1/memories/%2e%2e?user_id=victim"),
    ("GET", "/v1/models/..%2f..%2fetc%2fpasswd"),
    ("GET", "/../../etc/passwd"),
    ("GET", "//etc/passwd"),
]


@pytest.mark.parametrize(("method", "target"), TRAVERSALS, ids=[" ".join(t) for t in TRAVERSALS])
def test_path_traversal_is_a_4xx_error_body(
    fake_gateway: GatewayProcess, method: str, target: str
) -> None:
    # Raw: httpx would resolve the dot segments before sending.
    response = raw_exchange(fake_gateway, raw_request(method, target))
    assert 400 <= response.status_code < 500, response.text
    assert_openai_error(response, response.status_code)
    assert "root:" not in response.text


DISGUISED: dict[str, dict[str, Any]] = {
    CHAT_PATH: {"max_tokens": "1", "temperature": "0.5", "n": "2", "logprobs": 0},
    "/v1/chat": {"max_tokens": "1", "temperature": "0.5", "rag_k": "3", "use_rag": 1, "stream": 1},
}


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [(path, field, value) for path, fields in DISGUISED.items() for field, value in fields.items()],
)
def test_a_number_or_boolean_in_disguise_is_400(
    fake_gateway: GatewayProcess, path: str, field: str, value: Any
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], field: value}
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(path, json=body)
    assert_openai_error(response, 400, param=field)


@pytest.mark.parametrize("value", [1, "true", "1"], ids=repr)
def test_a_non_boolean_stream_is_400_not_a_5xx(fake_gateway: GatewayProcess, value: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": value}
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(CHAT_PATH, json=body)
    assert_openai_error(response, 400, param="stream")
