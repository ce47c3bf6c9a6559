"""A client that goes away cancels its request's work (retrieval, generation, the
upstream call) instead of leaving it to run for nobody."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.clients import bearer, chat_body, logged_request


@pytest.mark.parametrize(
    ("path", "extra"),
    [("/v1/chat/completions", {}), ("/v1/chat", {"use_rag": False, "user_id": "alice"})],
)
def test_a_disconnected_client_cancels_a_non_streamed_answer(
    fake_gateway: GatewayProcess, path: str, extra: dict[str, object]
) -> None:
    request_id = f"disconnect-{uuid.uuid4().hex}"
    # The fake upstream answers after 1.5 s; the client gives up long before.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{fake_gateway.url}{path}",
            json=chat_body("__sleep_1500__", **extra),
            headers={**bearer(), "X-Request-ID": request_id},
            timeout=httpx.Timeout(5.0, read=0.3),
        )
    (line,) = logged_request(fake_gateway, request_id)
    assert line["status"] == 499
    # Cancelled: the turn was never answered, so nothing was queued as memory.
    if path == "/v1/chat":
        memories = httpx.get(
            f"{fake_gateway.url}/v1/memories", params={"user_id": "alice"}, headers=bearer()
        ).json()
        assert all("__sleep_1500__" not in m["text"] for m in memories["data"])
