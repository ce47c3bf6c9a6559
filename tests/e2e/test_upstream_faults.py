"""The inference upstream killed (SIGKILL) during load, against real processes: the
gateway, the fake upstream(s) and concurrent httpx clients.

One upstream: answers turn into OpenAI errors (502 while it is unreachable, 503 once
its circuit is open), never a 500 and never a hang; it serves again, once restarted on
the same port, after the circuit's cool-down. Two upstreams serving one model: the
survivor takes over (failover). A stream cut by the upstream's death ends, with an
error event, instead of hanging."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    FakeUpstream,
    GatewayProcess,
    start_fake_upstream,
    start_gateway,
    stop,
)
from tests.e2e.clients import (
    CHAT_PATH,
    DONE,
    api_client,
    chat_body,
    eventually,
    sse_data,
    upstream_events,
)
from tests.e2e.conftest import UNLIMITED
from tests.e2e.openai_errors import ERROR_FIELDS, assert_openai_error

MODEL = "fake-model"
CLIENTS = 4
# More than the requests in flight at the kill: requests sent after it find the
# upstream unreachable (502) before its circuit opens (503).
CIRCUIT_FAILURES = 2 * CLIENTS
UPSTREAM_TIMEOUT_S = 2.0
FAULT_ENV = {
    "GATEWAY_DEFAULT_MODEL": MODEL,
    "GATEWAY_UPSTREAM_TIMEOUT_S": str(UPSTREAM_TIMEOUT_S),
    "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S": "1",
    "GATEWAY_CIRCUIT_FAILURES": str(CIRCUIT_FAILURES),
    "GATEWAY_CIRCUIT_COOLDOWN_S": "1",
    # Thousands of requests from one key in a few seconds: no rate limit in the way.
    "GATEWAY_TIER_LIMITS": UNLIMITED,
}
# A request the gateway has not answered by then hangs: its longest legitimate wait
# is the upstream timeout plus the retries' back-off.
HANG_S = 5 * UPSTREAM_TIMEOUT_S
# Long enough that every client has a request in flight at the upstream when it dies.
IN_FLIGHT = "__sleep_100__"
# How long the test waits for what must happen (a bound against a hang, not a measure).
WITHIN_S = 20.0
STEADY = 20  # successes in a row that show an upstream serving again


def served(upstream: FakeUpstream) -> int:
    count = upstream.stats()["requests"]
    assert isinstance(count, int)
    return count


@dataclass
class Launcher:
    """Fake upstreams and gateways started by one test, all stopped after it."""

    tmp: Path
    processes: list[Any] = field(default_factory=list)

    def upstream(self, *args: str) -> FakeUpstream:
        upstream = start_fake_upstream("--model", MODEL, *args)
        self.processes.append(upstream.process)
        return upstream

    def restarted(self, killed: FakeUpstream) -> FakeUpstream:
        # start_fake_upstream passes --port 0 first: the later --port wins.
        return self.upstream("--port", str(killed.port))

    def gateway(self, *upstreams: FakeUpstream) -> GatewayProcess:
        urls = ",".join(u.url for u in upstreams)
        gateway = start_gateway({**FAULT_ENV, "MAX_SERVE_URL": urls}, self.tmp)
        self.processes.append(gateway.process)
        return gateway


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    yield launcher
    for process in reversed(launcher.processes):
        stop(process)


def kill(upstream: FakeUpstream) -> None:
    """SIGKILL: no goodbye to the gateway's open connections."""
    upstream.process.kill()
    upstream.process.wait()


@dataclass(frozen=True)
class Outcome:
    sent: str  # the load's phase when the request was sent
    answered: str  # and when its answer (or the client's timeout) came
    response: httpx.Response | None  # None: no answer (within HANG_S, or at all)

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None


class Load:
    """CLIENTS threads posting chat completions back to back until the block ends,
    each outcome recorded with the phase (set by the test) it was sent and answered in."""

    def __init__(self, gateway: GatewayProcess, content: str) -> None:
        self.phase = "up"
        self.outcomes: list[Outcome] = []
        self._gateway = gateway
        self._body = chat_body(content)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        with api_client(self._gateway, timeout=HANG_S) as client:
            while not self._done.is_set():
                sent = self.phase
                try:
                    response: httpx.Response | None = client.post(CHAT_PATH, json=self._body)
                except httpx.TransportError:  # a timeout (a hang) or a broken connection
                    response = None
                with self._lock:
                    self.outcomes.append(Outcome(sent, self.phase, response))
                # Refusals are immediate: a short pause keeps the load steady, not a spin.
                self._done.wait(0.01)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join()

    def sent_in(self, *phases: str) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.sent in phases]

    def answered_in(self, phase: str) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.answered == phase]

    def successes_in_a_row(self, phase: str) -> int:
        """Trailing 200s among the answers to requests sent in ``phase``."""
        streak = 0
        for outcome in reversed(self.sent_in(phase)):
            if outcome.status != 200:
                break
            streak += 1
        return streak


def logged_events(gateway: GatewayProcess, event: str) -> list[dict[str, Any]]:
    """The gateway's JSON log lines of ``event`` (a line still being written left out)."""
    complete = gateway.log().rpartition("\n")[0]
    lines = (json.loads(line) for line in complete.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def assert_refusals(outcomes: list[Outcome], allowed: set[int]) -> None:
    """Every outcome is an answer (no hang) with an allowed status; every refusal
    OpenAI's error body with the code of its status."""
    codes = {502: "upstream_unavailable", 503: "upstream_overloaded"}
    statuses = [o.status for o in outcomes]
    assert set(statuses) <= allowed, statuses
    for outcome in outcomes:
        assert outcome.response is not None
        if outcome.status != 200:
            assert_openai_error(
                outcome.response,
                outcome.response.status_code,
                code=codes[outcome.response.status_code],
            )


def test_one_upstream_killed_under_load_then_restarted(launch: Launcher) -> None:
    upstream = launch.upstream()
    gateway = launch.gateway(upstream)
    target = upstream.url
    with Load(gateway, IN_FLIGHT) as load:
        assert eventually(lambda: load.successes_in_a_row("up") >= STEADY, WITHIN_S)
        load.phase = "kill"
        kill(upstream)
        load.phase = "down"

        def circuit_opened() -> bool:
            return upstream_events(gateway).get(("circuit_open", target), 0) >= 1 and any(
                o.status == 503 for o in load.sent_in("down")
            )

        assert eventually(circuit_opened, WITHIN_S), load.sent_in("down")
        load.phase = "restart"
        launch.restarted(upstream)
        load.phase = "restarted"
        assert eventually(lambda: load.successes_in_a_row("restarted") >= STEADY, WITHIN_S)

    assert_refusals(load.answered_in("up"), {200})
    # In flight at the kill: answered, or refused like the requests that followed.
    assert_refusals(load.sent_in("up", "kill"), {200, 502, 503})
    # Nothing can succeed with the upstream dead: 502 while it is tried, 503 once its
    # circuit is open; each failure that opened it was a 502 to some client.
    down = load.sent_in("down")
    # A request still being retried by the gateway when the upstream came back may be
    # answered by it: only those answered after the restart began may succeed.
    assert_refusals([o for o in down if o.answered == "down"], {502, 503})
    assert_refusals([o for o in down if o.answered != "down"], {200, 502, 503})
    statuses = [o.status for o in load.outcomes]
    assert statuses.count(502) >= CIRCUIT_FAILURES, statuses
    assert [o.status for o in down].count(502) >= CIRCUIT_FAILURES - CLIENTS, statuses
    refused = [o.response for o in down if o.response is not None and o.status == 503]
    assert refused
    assert all("circuit is open" in r.json()["error"]["message"] for r in refused)
    # Restarted: refused at once until the cool-down ends, then a probe closes it.
    assert_refusals(load.sent_in("restart"), {200, 502, 503})
    assert_refusals(load.sent_in("restarted"), {200, 503})
    events = upstream_events(gateway)
    assert events.get(("circuit_open", target), 0) >= 1, events
    assert events.get(("circuit_closed", target), 0) >= 1, events
    assert target in {e["target"] for e in logged_events(gateway, "circuit_open")}
    assert target in {e["target"] for e in logged_events(gateway, "circuit_closed")}


def test_failover_to_the_surviving_upstream(launch: Launcher) -> None:
    doomed, survivor = launch.upstream(), launch.upstream()
    gateway = launch.gateway(doomed, survivor)
    with Load(gateway, IN_FLIGHT) as load:
        # Least-outstanding balancing: both upstreams take part of the load.
        assert eventually(lambda: served(doomed) >= STEADY and served(survivor) >= STEADY)
        served_before = served(survivor)
        load.phase = "kill"
        kill(doomed)
        load.phase = "failover"
        assert eventually(lambda: load.successes_in_a_row("failover") >= 2 * STEADY, WITHIN_S)
        # Its failures open the dead upstream's circuit: skipped without being tried.
        assert eventually(
            lambda: upstream_events(gateway).get(("circuit_open", doomed.url), 0) >= 1, WITHIN_S
        )

    assert_refusals(load.answered_in("up"), {200})
    # At most the requests in flight at the kill may fail, and cleanly.
    in_flight = load.sent_in("up", "kill")
    assert_refusals(in_flight, {200, 502, 503})
    failed = [o for o in in_flight if o.status != 200]
    assert len(failed) <= CLIENTS, failed
    # Every request sent after the kill is answered, by the survivor.
    after = load.sent_in("failover")
    assert_refusals(after, {200})
    assert served(survivor) - served_before >= len(after)
    events = upstream_events(gateway)
    assert events.get(("failover", MODEL), 0) >= 1, events
    failovers = logged_events(gateway, "failover")
    assert failovers
    assert {e["from_upstream"] for e in failovers} == {doomed.url}, failovers


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        pytest.param(CHAT_PATH, {}, id="chat-completions"),
        pytest.param(
            "/v1/chat",
            {"use_memory": False, "use_rag": False, "store_memory": False},
            id="unified-chat",
        ),
    ],
)
def test_a_stream_cut_by_the_upstreams_death_ends_with_an_error_event(
    launch: Launcher, path: str, extra: dict[str, Any]
) -> None:
    upstream = launch.upstream()
    gateway = launch.gateway(upstream)
    body = chat_body("__slow_stream__", stream=True, **extra)  # 50 chunks, 200 ms apart
    events: list[str] = []
    with (
        api_client(gateway, timeout=HANG_S) as client,
        client.stream("POST", path, json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        while len(events) < 3:
            events += sse_data(next(lines))
        kill(upstream)
        # Ends (the client's read timeout would fail the test on a hang).
        events += sse_data("\n".join(lines))

    payloads = [json.loads(e) for e in events if e != DONE]
    assert DONE not in events, events
    tokens = [p for p in payloads if p.get("object") == "chat.completion.chunk"]
    assert 2 <= len(tokens) < 50, events
    error = payloads[-1].get("error")
    assert error is not None, events
    assert set(error) == ERROR_FIELDS, error
    assert error["type"] == "server_error", error
    assert error["code"] == "upstream_unavailable", error
    # The next request is refused as cleanly: /v1/chat has sent its context (200) before
    # generation starts, so its refusal is an error event after it.
    with api_client(gateway, timeout=HANG_S) as client:
        after = client.post(path, json=body)
    if path == CHAT_PATH:
        assert_openai_error(after, 502, code="upstream_unavailable")
    else:
        assert after.status_code == 200, after.text
        refused = json.loads(sse_data(after.text)[-1])
        assert refused["error"]["code"] == "upstream_unavailable", after.text
