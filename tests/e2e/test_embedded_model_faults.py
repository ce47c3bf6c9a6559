"""The embedded model (a supervised ``llama_cpp.server`` child) under faults, against
real processes: the gateway, its llama.cpp child and concurrent httpx clients.

Malformed-but-plausible bodies from one key are 400s and never open the circuit for
the others; OpenAI's message forms are served; two clients at once both get whole
answers (llama.cpp's default interrupts the first); a client that gives up on a
non-streamed answer frees the model; the child killed in a loop makes /health say so
(and why), and the gateway serves again once it is let up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, start_gateway, stop
from tests.e2e.clients import CHAT_PATH, DONE, api_client, bearer, chat_body, eventually, sse_data
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY, UNLIMITED
from tests.e2e.openai_errors import assert_openai_error

pytestmark = pytest.mark.llama

UNIFIED = "/v1/chat"
NO_RETRIEVAL = {"use_memory": False, "use_rag": False, "store_memory": False}
UPSTREAM_TIMEOUT_S = 30
CIRCUIT_FAILURES = 3
# SmolLM2's end-of-text token, banned: the answer runs to max_tokens.
NEVER_STOP = {"logit_bias": {"2": -100}}
ENV = {
    "GATEWAY_UPSTREAM_TIMEOUT_S": str(UPSTREAM_TIMEOUT_S),
    "GATEWAY_CIRCUIT_FAILURES": str(CIRCUIT_FAILURES),
    "GATEWAY_CIRCUIT_COOLDOWN_S": "60",
    "GATEWAY_TIER_LIMITS": UNLIMITED,
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    started = start_gateway(ENV, tmp_path_factory.mktemp("embedded-faults"))
    yield started
    stop(started.process)  # type: ignore[arg-type]


def unified(content: str | list[dict[str, str]], **params: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return {"messages": messages, **NO_RETRIEVAL, **params}


def admin_health(gateway: GatewayProcess) -> httpx.Response:
    return httpx.get(f"{gateway.url}/health", headers=bearer(ADMIN_KEY), timeout=30)


class Chatter:
    """Another key chatting back to back (non-streamed) until the block ends."""

    def __init__(self, gateway: GatewayProcess, path: str, body: dict[str, Any]) -> None:
        self.statuses: list[int] = []
        self._gateway, self._path, self._body = gateway, path, body
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with api_client(self._gateway, DEVELOPER_KEY, timeout=2 * UPSTREAM_TIMEOUT_S) as client:
            while not self._done.is_set():
                self.statuses.append(client.post(self._path, json=self._body).status_code)

    def __enter__(self) -> Chatter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


# Plausible OpenAI bodies the embedded server cannot take (its 500s), and what the 400
# must name; then OpenAI forms it could not take before (now served).
MALFORMED = [
    ({"messages": [{"role": "user", "content": None}]}, "concatenate"),
    (chat_body("hi", frequency_penalty=5), "frequency_penalty"),
    (
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]}]},
        "'image_url'",
    ),
]  # fmt: skip
OPENAI_FORMS = {
    CHAT_PATH: {
        "messages": [
            {"role": "developer", "content": "Answer in one sentence."},
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hi!"}]},
        ],
        "max_tokens": 8,
    },
    UNIFIED: unified(
        [{"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": "Hi!"}],
        max_tokens=8,
    ),
}


@pytest.mark.parametrize("path", [CHAT_PATH, UNIFIED], ids=["chat-completions", "unified-chat"])
def test_malformed_requests_from_one_key_while_another_chats(
    gateway: GatewayProcess, path: str
) -> None:
    other = chat_body("Hello!", max_tokens=4) if path == CHAT_PATH else unified("Hi", max_tokens=4)
    with Chatter(gateway, path, other) as chatter, api_client(gateway, STANDARD_KEY) as sender:
        if path == CHAT_PATH:
            for _ in range(2):  # more than the circuit's threshold in all
                for body, reason in MALFORMED:
                    error = assert_openai_error(
                        sender.post(path, json={**body, "max_tokens": 4}), 400
                    )
                    assert reason in error["message"], error
                    assert "Traceback" not in error["message"]
        forms = [sender.post(path, json=OPENAI_FORMS[path]) for _ in range(2)]
        assert eventually(lambda: len(chatter.statuses) >= 3, UPSTREAM_TIMEOUT_S)
    for response in forms:
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"]
    assert chatter.statuses
    assert set(chatter.statuses) == {200}, chatter.statuses
    health = admin_health(gateway).json()
    assert health["services"]["embedded_model"]["status"] == "healthy", health


def streamed(gateway: GatewayProcess, path: str, body: dict[str, Any]) -> list[str]:
    with (
        api_client(gateway, timeout=2 * UPSTREAM_TIMEOUT_S) as client,
        client.stream("POST", path, json={**body, "stream": True}) as response,
    ):
        assert response.status_code == 200
        return sse_data(response.read().decode())


@pytest.mark.parametrize("path", [CHAT_PATH, UNIFIED], ids=["chat-completions", "unified-chat"])
def test_two_clients_at_once_both_get_whole_answers(gateway: GatewayProcess, path: str) -> None:
    body = (
        chat_body("Tell me a story.", max_tokens=48, **NEVER_STOP)
        if path == CHAT_PATH
        else unified("Tell me a story.", max_tokens=48)
    )
    answers: list[list[str]] = [[], []]

    def client(number: int) -> None:
        answers[number] = streamed(gateway, path, body)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for events in answers:
        assert events[-1] == DONE, events
        payloads = [json.loads(e) for e in events if e != DONE]
        assert not [p for p in payloads if "error" in p], payloads
        chunks = [p for p in payloads if p.get("object") == "chat.completion.chunk"]
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finishes[-1] in ("stop", "length"), events


def test_a_client_that_gives_up_frees_the_model(gateway: GatewayProcess) -> None:
    """Two clients time out on long non-streamed answers; the next request is served
    within the upstream timeout, which it could not be if the model still generated
    them (far more tokens than it makes in that time, one request at a time)."""
    long = chat_body("Write a long story.", max_tokens=3000, **NEVER_STOP)
    with api_client(gateway, timeout=1.5) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post(CHAT_PATH, json=long)
        # /v1/chat takes no logit_bias: the model may end its story early.
        with contextlib.suppress(httpx.ReadTimeout):
            impatient.post(UNIFIED, json=unified("Write a long story.", max_tokens=3000))
    with api_client(gateway, timeout=2 * UPSTREAM_TIMEOUT_S) as client:
        small = client.post(CHAT_PATH, json=chat_body("Hi", max_tokens=4))
    assert small.status_code == 200, small.text
    assert small.json()["choices"][0]["message"]["content"]


def test_a_client_that_gives_up_on_a_legacy_completion_frees_the_model(
    gateway: GatewayProcess,
) -> None:
    """The same for ``/v1/completions``: two clients give up on long non-streamed text
    completions; the next request is served within the upstream timeout."""
    long = {"prompt": "Once upon a time", "max_tokens": 3000, **NEVER_STOP}
    with api_client(gateway, timeout=1.5) as impatient:
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                impatient.post("/v1/completions", json=long)
    with api_client(gateway, timeout=2 * UPSTREAM_TIMEOUT_S) as client:
        small = client.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 4})
    assert small.status_code == 200, small.text
    assert small.json()["choices"][0]["text"]


# --- the child killed in a loop -----------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with_children = task / "children"
            children = with_children.read_text().split() if with_children.exists() else []
            found += [int(c) for c in children]
            pending += [int(c) for c in children]
    return found


def llama_child(gateway: GatewayProcess) -> int | None:
    for pid in descendants(gateway.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"llama_cpp.server" in command:
            return pid
    return None


def test_the_child_killed_in_a_loop_is_unhealthy_then_recovers(tmp_path: Path) -> None:
    gateway = start_gateway(ENV, tmp_path)
    try:
        killed: set[int] = set()
        public_downs: list[tuple[httpx.Response, httpx.Response]] = []
        for _ in range(3):
            child = eventually(lambda: (pid := llama_child(gateway)) not in killed and pid, 60)
            assert child, "the supervisor did not restart the child"
            os.kill(child, signal.SIGKILL)
            killed.add(child)

            def reported_down() -> httpx.Response | None:
                # Once the supervisor has seen the exit (a moment after the kill).
                response = admin_health(gateway)
                detail = response.json()["services"]["embedded_model"]["detail"] or ""
                return response if "SIGKILL" in detail else None

            down = eventually(reported_down, 30)
            assert down is not None, admin_health(gateway).text
            assert down.status_code == 503
            assert down.json()["services"]["embedded_model"]["status"] == "unhealthy"
            assert "restart" in down.json()["services"]["embedded_model"]["detail"]
            public = httpx.get(f"{gateway.url}/health", timeout=30)
            ready = httpx.get(f"{gateway.url}/health/ready", timeout=30)
            if public.json()["services"]["embedded_model"]["status"] == "unhealthy":
                # (unless it came up again in between: restarts take a second or two)
                public_downs.append((public, ready))

        # Without a key: down, and nothing of why.
        assert public_downs
        for public, ready in public_downs:
            assert public.status_code == 503
            assert public.json()["services"]["embedded_model"]["detail"] is None
            assert ready.status_code == 503

        def healthy() -> bool:
            return admin_health(gateway).json()["services"]["embedded_model"]["status"] == (
                "healthy"
            )

        assert eventually(healthy, 120)
        # Up again, and the admin sees what it went through.
        detail = admin_health(gateway).json()["services"]["embedded_model"]["detail"]
        assert "running" in detail, detail
        assert "3 restart(s)" in detail, detail
        with api_client(gateway, timeout=2 * UPSTREAM_TIMEOUT_S) as client:
            served = client.post(CHAT_PATH, json=chat_body("Hi", max_tokens=4))
        assert served.status_code == 200, served.text
    finally:
        stop(gateway.process)  # type: ignore[arg-type]
