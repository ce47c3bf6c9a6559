"""Every way a chat completion can fail, through a gateway in front of the fake
upstream: the right status, and always OpenAI's error body."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GatewayProcess
from tests.e2e.clients import api_client, chat_body, post_chat
from tests.e2e.openai_errors import assert_openai_error


def test_invalid_json_is_400(fake_gateway: GatewayProcess) -> None:
    response = post_chat(
        fake_gateway, content=b'{"messages": [', headers={"Content-Type": "application/json"}
    )
    assert_openai_error(response, 400)


def test_text_plain_is_415(fake_gateway: GatewayProcess) -> None:
    response = post_chat(
        fake_gateway,
        content=b'{"messages": [{"role": "user", "content": "hi"}]}',
        headers={"Content-Type": "text/plain"},
    )
    assert_openai_error(response, 415)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({}, "messages", id="missing-messages"),
        pytest.param({"messages": []}, "messages", id="empty-messages"),
        pytest.param(chat_body("hi", temperature=2.5), "temperature", id="temperature"),
        pytest.param(chat_body("hi", top_p=1.5), "top_p", id="top_p"),
        pytest.param(chat_body("hi", max_tokens=0), "max_tokens", id="max_tokens"),
    ],
)
def test_invalid_parameter_is_400_naming_it(
    fake_gateway: GatewayProcess, body: dict[str, Any], param: str
) -> None:
    assert_openai_error(post_chat(fake_gateway, json=body), 400, param=param)


def test_unknown_role_is_400_naming_the_role(fake_gateway: GatewayProcess) -> None:
    body = {"messages": [{"role": "wizard", "content": "hi"}]}
    error = assert_openai_error(post_chat(fake_gateway, json=body), 400)
    assert "role" in (error["param"] or "")


def test_body_over_one_mebibyte_is_413(fake_gateway: GatewayProcess) -> None:
    response = post_chat(fake_gateway, json=chat_body("x" * (1 << 20)))
    assert_openai_error(response, 413)


def test_unknown_model_is_404_model_not_found(fake_gateway: GatewayProcess) -> None:
    response = post_chat(fake_gateway, json=chat_body("hi", model="no-such-model"))
    assert_openai_error(response, 404, param="model", code="model_not_found")


@pytest.mark.parametrize(
    ("directive", "status"),
    [
        pytest.param("__status_503__", 503, id="upstream-503"),
        # The upstream serves other requests: this one caused its 500.
        pytest.param("__status_500__", 400, id="upstream-500"),
        pytest.param("__garbage__", 502, id="garbage"),
        pytest.param("__drop__", 502, id="drop"),
        pytest.param("__status_400__", 400, id="upstream-400"),
    ],
)
def test_upstream_failure_maps_to_status(
    fake_gateway: GatewayProcess, directive: str, status: int
) -> None:
    assert_openai_error(post_chat(fake_gateway, json=chat_body(directive)), status)


def test_upstream_500_for_one_request_relays_its_reason(fake_gateway: GatewayProcess) -> None:
    error = assert_openai_error(post_chat(fake_gateway, json=chat_body("__status_500__")), 400)
    assert "fake upstream error 500" in error["message"]


@pytest.mark.parametrize(
    ("directive", "status"),
    [("__garbage__", 502), ("__status_503__", 503), ("__status_400__", 400)],
)
def test_streaming_failure_is_a_status_not_an_event(
    fake_gateway: GatewayProcess, directive: str, status: int
) -> None:
    # The gateway waits for the first chunk before it sends its headers.
    response = post_chat(fake_gateway, json=chat_body(directive, stream=True))
    assert_openai_error(response, status)


def test_slow_upstream_is_504_without_hanging(fake_gateway: GatewayProcess) -> None:
    # The fixture's upstream timeout is 2 s; the client would wait 30 s for a hang.
    response = post_chat(fake_gateway, json=chat_body("__sleep_5000__"), timeout=30.0)
    assert_openai_error(response, 504)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/nope",
        "/nope",
    ],
)
def test_unknown_path_is_4xx_with_error_body(fake_gateway: GatewayProcess, path: str) -> None:
    with api_client(fake_gateway) as client:
        response = client.get(path)
    assert 400 <= response.status_code < 500
    assert_openai_error(response, response.status_code)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/chat/completions"), ("DELETE", "/v1/models"), ("PUT", "/health")],
)
def test_wrong_method_is_405(fake_gateway: GatewayProcess, method: str, path: str) -> None:
    with api_client(fake_gateway) as client:
        response = client.request(method, path)
    assert_openai_error(response, 405)
