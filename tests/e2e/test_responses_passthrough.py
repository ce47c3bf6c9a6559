"""``/v1/responses`` forwarded to an upstream that serves it itself
(``GATEWAY_RESPONSES_PASSTHROUGH``): a request needing nothing of the gateway's goes as
it is, the upstream's answer relayed; a stored one, a continued one or one asking for
memory or RAG is translated onto chat completions as everywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from domain.errors import ConfigurationError
from tests.conftest import FakeUpstream
from tests.e2e.clients import api_client, last_upstream_request
from tests.e2e.conftest import STANDARD_KEY, UNLIMITED
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway, openai_client

MODEL = "fake-model"


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_RESPONSES_PASSTHROUGH": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": MODEL,
        "GATEWAY_TIER_LIMITS": UNLIMITED,
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("responses-passthrough")) as started:
        yield started


@pytest.fixture(scope="module")
def oai(gateway: InProcessGateway) -> Iterator[openai.OpenAI]:
    """The official SDK driving the app in process (its real-port checks are
    test_client_protocols_embedded's and test_client_context's)."""
    with openai_client(gateway, api_key=STANDARD_KEY) as client:
        yield client


def test_an_unstored_response_is_the_upstreams(
    oai: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    response = oai.responses.create(model=MODEL, input="Say hi.", store=False)
    assert response.id.startswith("resp_fake")
    assert response.output_text == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert response.usage is not None
    assert response.usage.output_tokens == 8
    sent = last_upstream_request(fake_upstream)
    assert sent["input"] == "Say hi."
    assert "messages" not in sent
    assert sent["max_output_tokens"] == 4096  # the standard tier's cap, as translated
    assert sent["store"] is False


def test_an_unstored_stream_is_the_upstreams(
    oai: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    with oai.responses.stream(model=MODEL, input="Say hi.", store=False) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == [f"tok{n} " for n in range(8)]
    assert final.id.startswith("resp_fake")
    assert final.status == "completed"
    short = oai.responses.create(model=MODEL, input="Say hi.", store=False, max_output_tokens=3)
    assert short.status == "incomplete"
    assert last_upstream_request(fake_upstream)["max_output_tokens"] == 3


def test_what_needs_the_gateway_is_translated(
    oai: openai.OpenAI, gateway: InProcessGateway, fake_upstream: FakeUpstream
) -> None:
    stored = oai.responses.create(model=MODEL, input="Say hi.")  # store: true by default
    assert not stored.id.startswith("resp_fake")
    assert "messages" in last_upstream_request(fake_upstream)
    assert oai.responses.retrieve(stored.id).id == stored.id
    continued = oai.responses.create(
        model=MODEL, input="More.", store=False, previous_response_id=stored.id
    )
    assert not continued.id.startswith("resp_fake")
    with api_client(gateway) as client:
        with_rag = client.post(
            "/v1/responses", headers={"X-Gateway-RAG": "true"},
            json={"model": MODEL, "input": "the coolant?", "store": False},
        )  # fmt: skip
    assert with_rag.status_code == 200, with_rag.text
    assert not with_rag.json()["id"].startswith("resp_fake")
    assert "x-gateway-stages" in with_rag.headers


def test_admission_and_the_upstreams_refusals(gateway: InProcessGateway) -> None:
    url = "/v1/responses"
    with api_client(gateway) as client:
        over = client.post(url, json={"model": MODEL, "input": "x", "store": False,
                                      "max_output_tokens": 100_000})  # fmt: skip
        refused = client.post(url, json={"model": MODEL, "input": "__status_400__", "store": False})
        unknown = client.post(url, json={"model": "nope", "input": "x", "store": False})
    assert_openai_error(over, 400, param="max_tokens")
    assert_openai_error(refused, 400)
    assert_openai_error(unknown, 404, param="model")


def test_a_passthrough_url_that_is_no_upstream_fails_the_start(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = {"MAX_SERVE_URL": fake_upstream.url,
           "GATEWAY_RESPONSES_PASSTHROUGH": "http://127.0.0.1:9/v1"}  # fmt: skip
    with (
        pytest.raises(ConfigurationError, match="GATEWAY_RESPONSES_PASSTHROUGH"),
        in_process_gateway(env, tmp_path),
    ):
        pass
