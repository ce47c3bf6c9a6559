"""Gateways started as real processes for the end-to-end suites."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeUpstream, GatewayProcess, start_gateway, stop

UNLIMITED = (
    '{"standard": {"requests_per_minute": 1000000, "tokens_per_minute": 1000000000},'
    ' "developer": {"requests_per_minute": 1000000, "tokens_per_minute": 1000000000},'
    ' "admin": {"requests_per_minute": 1000000, "tokens_per_minute": 1000000000}}'
)
STANDARD_KEY = "sk-test-key-123"
ADMIN_KEY = "sk-admin-key-456"
DEVELOPER_KEY = "sk-dev-key-789"


@pytest.fixture(scope="session")
def embedded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Zero configuration: the embedded llama.cpp model and the seed's dev keys."""
    gateway = start_gateway({}, tmp_path_factory.mktemp("embedded"))
    yield gateway
    stop(gateway.process)  # type: ignore[arg-type]


def fake_env(fake_upstream: FakeUpstream, **extra: str) -> dict[str, str]:
    """The fake upstream, its model by default and limits out of the way; ``extra``
    on top (a suite's own limits, Redis...)."""
    return {
        "MAX_SERVE_URL": fake_upstream.url,
        "GATEWAY_DEFAULT_MODEL": "fake-model",
        "GATEWAY_TIER_LIMITS": UNLIMITED,
        **extra,
    }


def shared_fake_env(fake_upstream: FakeUpstream) -> dict[str, str]:
    """Production-like: MAX_SERVE_URL points at the fake upstream; a short timeout.
    Many suites share this gateway and its keys: limits out of their way (the limits
    have gateways of their own in their tests)."""
    # The suites inject upstream failures on purpose: no circuit opens here (the
    # circuit breaker has a gateway of its own in its test).
    return fake_env(
        fake_upstream, GATEWAY_UPSTREAM_TIMEOUT_S="2", GATEWAY_CIRCUIT_FAILURES="100000"
    )


@pytest.fixture(scope="session")
def fake_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """``shared_fake_env`` as a process, shared by the suites."""
    gateway = start_gateway(shared_fake_env(fake_upstream), tmp_path_factory.mktemp("fake"))
    yield gateway
    stop(gateway.process)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis for one module's gateways (each module its own: no shared keys)."""
    from tests.contract.memory_fixtures import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{server.port}/0"
    server.kill()


def gateway_in(tmp: Path, **env: str) -> GatewayProcess:
    return start_gateway(env, tmp)


# Debian's Chromium (``apt-get install chromium``; scripts/test.sh installs it), driven by
# playwright: its own browser download is not reachable.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for one module's pages (module scope: playwright's sync API
    runs a loop of its own, which must not outlive the module's tests)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def gateway_pair(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, name: str
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway instances on one ``env`` (one Redis: limits, keys, usage shared)."""
    first = start_gateway(env, tmp_path_factory.mktemp(f"{name}-a"))
    try:
        second = start_gateway(env, tmp_path_factory.mktemp(f"{name}-b"))
    except BaseException:
        stop(first.process)  # type: ignore[arg-type]
        raise
    try:
        yield first, second
    finally:
        stop(first.process)  # type: ignore[arg-type]
        stop(second.process)  # type: ignore[arg-type]
