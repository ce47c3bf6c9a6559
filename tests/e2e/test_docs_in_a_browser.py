"""``/docs`` (Swagger UI) and ``/redoc`` in a real headless Chromium with no network:
the viewers ship with the gateway, the pages name no other origin, the schema's
bearer scheme gives Swagger UI its Authorize button, and "Try it out" works.

Chromium is Debian's (``apt-get install chromium``; scripts/test.sh installs it),
driven by playwright; screenshots go to the test's tmp dir (printed with -s)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.e2e.conftest import STANDARD_KEY


@pytest.fixture
def page(browser: Any, fake_gateway: GatewayProcess) -> Iterator[Any]:
    """A page that may reach the gateway only: any other origin is refused and
    recorded, so a CDN reference fails the test as it fails offline."""
    context = browser.new_context()
    foreign: list[str] = []

    def route(request: Any) -> None:
        if request.request.url.startswith(fake_gateway.url):
            request.continue_()
        else:
            foreign.append(request.request.url)
            request.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.foreign = foreign
    yield page
    context.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_pages_name_no_other_origin(fake_gateway: GatewayProcess, path: str) -> None:
    html = httpx.get(f"{fake_gateway.url}{path}").text
    assert not re.search(r"(src|href)=\"(https?:)?//", html), html


def test_every_keyed_operation_declares_the_bearer_scheme(fake_gateway: GatewayProcess) -> None:
    schema = httpx.get(f"{fake_gateway.url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    keyed = public = 0
    for path, item in schema["paths"].items():
        for operation in item.values():
            if path.startswith("/health"):
                public += 1
                assert "security" not in operation
            else:
                keyed += 1
                assert operation["security"] == [{"bearer": []}], path
                assert operation["x-required-tier"] in {"standard", "developer", "admin"}
                assert f"tier **{operation['x-required-tier']}**" in operation["description"]
    assert keyed > 20
    assert public >= 1
    keys = schema["paths"]["/v1/keys"]["post"]
    assert keys["x-required-tier"] == "admin"


def test_swagger_ui_renders_and_try_it_out_answers(
    page: Any, fake_gateway: GatewayProcess, tmp_path: Path
) -> None:
    page.goto(f"{fake_gateway.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 20
    # Authorize with the key.
    page.click("button.authorize")
    page.fill("#auth-bearer-value", STANDARD_KEY)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    # Try it out on GET /v1/models.
    operation = page.locator("#operations-inference-V1ModelsListModels")
    operation.locator(".opblock-summary").first.click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=30_000)
    status.scroll_into_view_if_needed()
    shot = tmp_path / "swagger-ui.png"
    page.screenshot(path=str(shot), full_page=False)
    print(f"screenshot: {shot}")
    assert status.inner_text().strip().startswith("200")
    assert "fake-model" in operation.locator(".live-responses-table").inner_text()
    assert page.foreign == []


def test_redoc_renders_the_operations(
    page: Any, fake_gateway: GatewayProcess, tmp_path: Path
) -> None:
    page.goto(f"{fake_gateway.url}/redoc")
    page.locator("h2", has_text="List models").first.wait_for(timeout=30_000)
    shot = tmp_path / "redoc.png"
    page.screenshot(path=str(shot), full_page=False)
    print(f"screenshot: {shot}")
    assert page.locator("h2", has_text="Create embeddings").count() >= 1
    assert page.foreign == []
