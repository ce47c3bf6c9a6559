"""The web console at ``/ui`` in a real headless Chromium (Debian's, driven by playwright,
as in test_docs_in_a_browser.py) against a real gateway process (the fake upstream:
streaming is real, the answers are quick).

Every page may reach the gateway only (another origin is refused and recorded) and a
Content-Security-Policy report in the console fails the test. Screenshots of each page
go to ``tests/artifacts/console/`` (gitignored); the page weight and first paint of the
playground go to ``tests/artifacts/console/figures.json`` and are printed (``-s``)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import GatewayProcess, free_port, stop
from tests.e2e.clients import bearer
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY, gateway_in

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
VIEWPORT = {"width": 1180, "height": 760}
# Payloads that run script if the page ever renders text as HTML.
XSS_SCRIPT = "<script>window.__xss = 'script'</script>"
XSS_IMG = "<img src=x onerror=\"window.__xss = 'img'\">"


def open_page(browser: Any, gateway: GatewayProcess) -> tuple[Any, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    foreign: list[str] = []
    problems: list[str] = []

    def route(request: Any) -> None:
        if request.request.url.startswith(gateway.url):
            request.continue_()
        else:
            foreign.append(request.request.url)
            request.abort()

    def console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            problems.append(text)

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of deletes
    page.foreign = foreign
    page.problems = problems
    return context, page


@pytest.fixture
def page(browser: Any, fake_gateway: GatewayProcess) -> Iterator[Any]:
    context, page = open_page(browser, fake_gateway)
    yield page
    try:
        assert page.foreign == []
        assert page.problems == []
        assert page.evaluate("window.__xss") is None
    finally:
        context.close()


def sign_in(page: Any, gateway: GatewayProcess, key: str, where: str = "") -> None:
    page.goto(f"{gateway.url}/ui{where}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")
    return path


def unlabelled(page: Any) -> list[str]:
    """The form controls shown with no label naming them."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter((e) => e.offsetParent !== null)
                .filter((e) => !(e.labels && e.labels.length && e.labels[0].textContent.trim())
                               && !e.getAttribute('aria-label'))
                .map((e) => e.id || e.outerHTML)"""
        )
    )


def unnamed_buttons(page: Any) -> list[str]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('button')]
                .filter((e) => e.offsetParent !== null)
                .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim()))
                .map((e) => e.outerHTML)"""
        )
    )


# --- the files and their headers -------------------------------------------------------


def test_the_console_is_served_with_a_strict_policy(fake_gateway: GatewayProcess) -> None:
    page = httpx.get(f"{fake_gateway.url}/ui")  # no key: the files hold no data
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert "http" not in csp
    assert "*" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    # No inline script, nothing from another origin.
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []
    assert not re.search(r"(src|href)=\"(https?:)?//", html), html
    assert "style=" not in html
    # The page's URLs are relative to /ui: /ui/ is sent there.
    slash = httpx.get(f"{fake_gateway.url}/ui/", follow_redirects=True)
    assert slash.status_code == 200
    assert slash.url.path == "/ui"


def test_the_assets_are_cached_and_revalidated(fake_gateway: GatewayProcess) -> None:
    url = f"{fake_gateway.url}/ui/assets/app.js"
    first = httpx.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/javascript")
    assert "max-age=3600" in first.headers["cache-control"]
    assert first.headers["content-security-policy"].startswith("default-src 'none'")
    assert first.headers["content-encoding"] == "gzip"  # httpx asks for it, and decodes
    assert "export" in first.text
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == first.content
    again = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert httpx.get(f"{fake_gateway.url}/ui", headers={"If-None-Match": '"x"'}).status_code == 200
    missing = httpx.get(f"{fake_gateway.url}/ui/assets/nothing.js")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error"}
    # Not part of the API's document (like /docs).
    paths = httpx.get(f"{fake_gateway.url}/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
    # No script of the console builds HTML from text.
    for script in ARTIFACTS.parents[2].joinpath("src/adapters/http/console/static").glob("*.js"):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{script.name}: {sink}"


# --- sign in ----------------------------------------------------------------------------


def test_sign_in_keeps_the_key_in_the_tab_only(page: Any, fake_gateway: GatewayProcess) -> None:
    page.goto(f"{fake_gateway.url}/ui")
    page.get_by_label("API key").fill("sk-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#notice")).to_contain_text("Sign-in refused")
    expect(page.locator("#nav")).to_be_hidden()
    shot(page, "sign-in")
    assert page.evaluate("sessionStorage.length") == 0

    sign_in(page, fake_gateway, STANDARD_KEY)
    assert STANDARD_KEY not in page.url
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length") == 0
    stored = page.evaluate("Object.values(sessionStorage)")
    assert STANDARD_KEY in stored
    page.get_by_role("link", name="Memory").click()
    expect(page.locator("#page-memory")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('gateway-console-key')") is None
    # Nor in the gateway's log (its access lines name the console's requests).
    log = fake_gateway.log()
    assert '"route":"/ui/assets/{name}"' in log
    assert '"route":"/metrics"' in log  # the sign-in's check of the key
    assert STANDARD_KEY not in log
    assert "sk-not-a-key" not in log


# --- playground -------------------------------------------------------------------------


def test_playground_streams_the_answer_with_its_context_and_waterfall(
    page: Any, fake_gateway: GatewayProcess
) -> None:
    user = f"console-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(STANDARD_KEY)) as api:
        api.post(
            "/v1/memories",
            json={"user_id": user, "text": f"My favourite colour is teal. {XSS_IMG}"},
        ).raise_for_status()
    sign_in(page, fake_gateway, STANDARD_KEY)
    page.get_by_label("User id").fill(user)
    page.get_by_label("Message").fill("What is my favourite colour?")
    # Keyboard only: from the message, Tab reaches the send button; Enter sends.
    page.get_by_label("Message").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "pg-send":
            break
    assert page.evaluate("document.activeElement.id") == "pg-send"
    with page.expect_response(lambda r: r.url.endswith("/v1/chat")) as answered:
        page.keyboard.press("Enter")
    assert answered.value.headers["content-type"].startswith("text/event-stream")

    expect(page.locator("#pg-waterfall svg").first).to_be_visible(timeout=30_000)
    assert page.locator("#pg-answer").inner_text().strip() != ""
    names = page.locator("#pg-waterfall .stage-name").all_text_contents()
    assert names[:4] == ["embedding", "memory retrieval", "RAG retrieval", "generation"]
    assert names[-1] == "total"
    assert page.locator("#pg-waterfall rect.bar-generation").count() == 1
    gauge = page.locator("#pg-waterfall svg.gauge").get_attribute("aria-label")
    assert re.fullmatch(r"[\d.]+ ms of a [\d.]+ ms budget", gauge or ""), gauge
    expect(page.locator("#pg-budget-verdict")).to_contain_text("latency budget")
    # The memory that went into the context, with its score, shown as text.
    memory = page.locator("#pg-memories li").first
    expect(memory).to_contain_text("teal")
    expect(memory).to_contain_text("score")
    assert XSS_IMG in memory.inner_text()
    assert page.locator("#pg-memories img").count() == 0
    shot(page, "playground")


def test_the_answer_shows_as_it_streams_and_can_be_stopped(
    page: Any, fake_gateway: GatewayProcess
) -> None:
    """A slow stream (tokens 200 ms apart): its first tokens are on the page while it
    still runs, before any metadata; Stop ends it."""
    sign_in(page, fake_gateway, STANDARD_KEY)
    for switch in ("Use memory", "Use RAG", "Store the turn as memory"):
        page.get_by_label(switch).uncheck()
    page.get_by_label("Message").fill("__slow_stream__")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#pg-answer")).to_contain_text("tok1", timeout=15_000)
    expect(page.locator("#pg-status")).to_have_text("Generating…")
    assert page.locator("#pg-waterfall svg").count() == 0  # the metadata comes last
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#pg-status")).to_have_text("Stopped.")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    assert page.locator("#pg-waterfall svg").count() == 0


def test_playground_says_plainly_what_degraded(page: Any, fake_gateway: GatewayProcess) -> None:
    sign_in(page, fake_gateway, STANDARD_KEY)
    page.get_by_label("User id").fill("")  # memory is per user: without one it is off
    page.get_by_label("Message").fill("Hello")
    page.get_by_role("button", name="Send", exact=True).click()
    degraded = page.locator("#pg-degraded .degraded")
    expect(degraded).to_be_visible(timeout=30_000)
    expect(degraded).to_contain_text("Degraded")
    expect(degraded.locator("code").first).to_have_text("memory")


def test_a_backend_down_is_named(browser: Any, tmp_path: Path) -> None:
    """Inference unreachable: the health page names it, the playground shows the 503."""
    gateway = gateway_in(
        tmp_path,
        MAX_SERVE_URL=f"http://127.0.0.1:{free_port()}/v1",
        GATEWAY_DEFAULT_MODEL="fake-model",
        GATEWAY_UPSTREAM_TIMEOUT_S="2",
    )
    context, page = open_page(browser, gateway)
    try:
        sign_in(page, gateway, ADMIN_KEY, "#/health")
        down = page.locator("#hm-down")
        expect(down).to_be_visible(timeout=30_000)
        expect(down).to_contain_text("Unhealthy: max_serve is unhealthy")
        expect(down).to_contain_text("refused the connection")  # why: an admin key
        shot(page, "health-degraded")
        page.get_by_role("link", name="Playground").click()
        page.get_by_label("Message").fill("Hello")
        page.get_by_role("button", name="Send", exact=True).click()
        error = page.locator("#pg-degraded .error")
        expect(error).to_be_visible(timeout=30_000)
        assert error.inner_text().strip() != ""
        assert page.foreign == []
        assert page.problems == []
    finally:
        context.close()
        stop(gateway.process)  # type: ignore[arg-type]


# --- keys ------------------------------------------------------------------------------


def test_an_admin_creates_and_revokes_a_key(page: Any, fake_gateway: GatewayProcess) -> None:
    name = f"console {uuid.uuid4().hex[:6]} {XSS_SCRIPT}{XSS_IMG}"
    sign_in(page, fake_gateway, ADMIN_KEY, "#/keys")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Tier", exact=True).select_option("standard")
    page.get_by_label("Token quota").fill("5000")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#key-secret")
    expect(secret).to_be_visible()
    value = secret.input_value()
    assert value.startswith("sk-")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#key-created")).to_contain_text("Copied")
    row = page.locator("#key-list tr", has_text=name)
    expect(row).to_contain_text("active")
    assert page.locator("#key-list img, #key-list script").count() == 0
    # The new key works until it is revoked; what it used shows against its quota.
    assert httpx.get(f"{fake_gateway.url}/v1/models", headers=bearer(value)).status_code == 200
    chat = httpx.post(
        f"{fake_gateway.url}/v1/chat/completions",
        headers=bearer(value),
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200
    used = chat.json()["usage"]["total_tokens"]
    page.reload()
    row = page.locator("#key-list tr", has_text=name)
    expect(row.locator(".usage")).to_have_text(f"{used} / 5000 (month)")
    assert row.locator(".usage svg").get_attribute("aria-label") == f"{used} of 5000 tokens"
    # Its usage over time: a chart (GET /v1/keys/{id}/usage) said in words and a table,
    # opened from the keyboard.
    row.get_by_role("button", name="Usage chart").focus()
    page.keyboard.press("Enter")
    summary = page.locator("#key-usage-summary")
    expect(summary).to_contain_text(f"{used} tokens and 2 requests in the last hour")
    chart = page.locator("#key-usage svg.usage-chart")
    assert f"{used} tokens and 2 requests" in (chart.get_attribute("aria-label") or "")
    assert chart.locator("rect.usage-bar").count() == 60
    heights = [float(h) for h in chart.locator("rect.usage-bar").evaluate_all(
        "bars => bars.map((b) => b.getAttribute('height'))")]  # fmt: skip
    assert heights[-1] > 0 or heights[-2] > 0  # the last minute (or the one before)
    expect(page.locator("#key-usage-quota")).to_contain_text(f"{used} of 5000 tokens")
    assert page.evaluate("document.activeElement.id") == "key-usage-title"
    page.get_by_label("Usage window", exact=True).select_option("24h")
    expect(summary).to_contain_text("in the last day, per hour")
    expect(page.locator("#key-usage svg.usage-chart rect.usage-bar")).to_have_count(24)
    page.get_by_label("Usage window", exact=True).select_option("1h")
    expect(page.locator("#key-usage svg.usage-chart rect.usage-bar")).to_have_count(60)
    assert value not in page.locator("#key-usage").inner_text()
    assert page.locator("#key-usage img, #key-usage script").count() == 0
    page.locator("#key-usage summary").click()
    expect(page.locator("#key-usage details tbody tr")).not_to_have_count(0)
    assert unlabelled(page) == []
    assert unnamed_buttons(page) == []
    page.locator("#key-usage").scroll_into_view_if_needed()
    shot(page, "keys")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("#key-list tr", has_text=name)).to_contain_text("revoked")
    # The page shows the secret once: listing again never shows it.
    assert value not in page.locator("#key-list").inner_text()

    def refused() -> bool:
        return httpx.get(f"{fake_gateway.url}/v1/models", headers=bearer(value)).status_code == 401

    assert wait_until(refused)


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_a_standard_key_is_denied_the_keys_page(page: Any, fake_gateway: GatewayProcess) -> None:
    sign_in(page, fake_gateway, STANDARD_KEY, "#/keys")
    denied = page.locator("#keys-denied")
    expect(denied).to_be_visible()
    expect(denied).to_contain_text("admin")
    assert page.locator("#key-form").count() == 0
    shot(page, "keys-denied")


def test_a_key_revoked_mid_session_signs_out(page: Any, fake_gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(ADMIN_KEY)) as admin:
        created = admin.post("/v1/keys", json={"name": "revoked mid-session"}).json()
        sign_in(page, fake_gateway, created["key"], "#/health")
        page.get_by_label("Refresh every").select_option("2")
        expect(page.locator("#hm-routes table")).to_be_visible()
        admin.delete(f"/v1/keys/{created['id']}").raise_for_status()
    expect(page.locator("#sign-in")).to_be_visible(timeout=20_000)
    expect(page.locator("#notice")).to_contain_text("Signed out")
    expect(page.locator("#notice")).to_contain_text("revoked")
    assert page.evaluate("sessionStorage.getItem('gateway-console-key')") is None


# --- memory ----------------------------------------------------------------------------


def test_memory_page_lists_searches_and_forgets_a_user(
    page: Any, fake_gateway: GatewayProcess
) -> None:
    user = f"mem-{uuid.uuid4().hex[:8]}"
    texts = [f"I keep bees on the roof {XSS_SCRIPT}", f"My dog is called Rex {XSS_IMG}"]
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(STANDARD_KEY)) as api:
        for text in texts:
            api.post("/v1/memories", json={"user_id": user, "text": text}).raise_for_status()
    sign_in(page, fake_gateway, STANDARD_KEY, "#/memory")
    page.get_by_label("User id").fill(user)
    page.get_by_role("button", name="List memories").click()
    rows = page.locator("#mem-list tbody tr")
    expect(rows).to_have_count(2)
    listed = page.locator("#mem-list").inner_text()
    assert XSS_SCRIPT in listed
    assert XSS_IMG in listed
    assert page.locator("#mem-list img, #mem-list tbody script").count() == 0

    page.get_by_label("Search this user's memories").fill("bees")
    page.get_by_role("button", name="Search", exact=True).click()
    hit = page.locator("#mem-results tbody tr").first
    expect(hit).to_contain_text("bees")
    cells = hit.locator("td").all_inner_texts()
    score, similarity, weight = (float(c) for c in cells[1:4])
    assert 0 < weight <= 1
    assert score == pytest.approx(similarity * weight, abs=2e-3)
    shot(page, "memory")

    # Correct one in place: the API stores the new text.
    index = next(i for i, t in enumerate(rows.all_inner_texts()) if "Rex" in t)
    row = rows.nth(index)  # by position: its text is about to change
    row.get_by_role("button", name="Edit this memory").click()
    row.get_by_label("Memory text").fill("My dog is called Max")
    row.get_by_role("button", name="Save").click()
    expect(row.locator(".hit-text")).to_have_text("My dog is called Max")
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(STANDARD_KEY)) as api:
        stored = api.get("/v1/memories", params={"user_id": user}).json()["data"]
        assert "My dog is called Max" in [m["text"] for m in stored]

    page.get_by_role("button", name="Forget this user").click()
    expect(page.locator("#mem-done")).to_contain_text("2 memories deleted")
    expect(page.locator("#mem-empty")).to_be_visible()
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(STANDARD_KEY)) as api:
        assert api.get("/v1/memories", params={"user_id": user}).json()["data"] == []


# --- knowledge base ---------------------------------------------------------------------


def test_upload_a_document_find_it_and_delete_it(page: Any, fake_gateway: GatewayProcess) -> None:
    word = f"zorbulate{uuid.uuid4().hex[:6]}"
    source = f"{XSS_IMG}{word}.md"
    text = f"# Notes\n\nThe {word} procedure needs two operators. {XSS_SCRIPT} {XSS_IMG}\n"
    sign_in(page, fake_gateway, DEVELOPER_KEY, "#/knowledge")
    page.get_by_label("Files (.md, .txt, .pdf, .docx, .html)").set_input_files(
        {"name": source, "mimeType": "text/markdown", "buffer": text.encode()}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#kb-uploaded")).to_contain_text("Ingested", timeout=30_000)
    row = page.locator("#kb-list tbody tr", has_text=word)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(source)  # the name is text, not an element

    page.get_by_label("Filter by source").fill(word)
    expect(page.locator("#kb-list tbody tr")).to_have_count(1)
    read_back(page, fake_gateway, word, text)
    page.get_by_label("Search the knowledge base").fill(f"{word} procedure")
    page.get_by_role("button", name="Search", exact=True).click()
    hit = page.locator("#kb-hits li").first
    expect(hit).to_contain_text(word, timeout=30_000)
    assert XSS_SCRIPT in hit.inner_text()
    assert page.locator("#kb-hits img, #kb-list img, #kb-hits li script").count() == 0
    expect(hit.locator(".score")).to_contain_text(f"{word}.md")  # where it comes from
    shot(page, "knowledge-base")

    # The chat sees it too: the playground lists it among the passages used.
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Message").fill(f"How does the {word} procedure work?")
    page.get_by_role("button", name="Send", exact=True).click()
    passage = page.locator("#pg-passages li", has_text=word).first
    expect(passage).to_contain_text("score", timeout=30_000)
    assert page.locator("#pg-passages img, #pg-passages li script").count() == 0

    page.get_by_role("link", name="Knowledge base").click()
    row = page.locator("#kb-list tbody tr", has_text=word)
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#kb-list tbody tr", has_text=word)).to_have_count(0)
    expect(page.locator("#kb-list")).to_be_visible()


def read_back(page: Any, gateway: GatewayProcess, word: str, text: str) -> None:
    """Click a document: its metadata and chunks (``GET /v1/documents/{id}?include=chunks``)
    shown as text; a gateway without that route (404 or 405) says read-back is not
    available. Which one this gateway is, the test asks the API itself."""
    with httpx.Client(base_url=gateway.url, headers=bearer(DEVELOPER_KEY)) as api:
        listed = api.get("/v1/documents", params={"limit": 100}).json()["data"]
        document = next(d for d in listed if word in d["source"])
        probe = api.get(f"/v1/documents/{document['id']}", params={"include": "chunks"})
    row = page.locator("#kb-list tbody tr", has_text=word)
    row.get_by_role("button", name=re.compile(r"^Read ")).click()
    reader = page.locator("#kb-document")
    expect(reader).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "kb-document-title"
    if probe.status_code in (404, 405):
        expect(page.locator("#kb-readback-unavailable")).to_contain_text("Read-back not available")
        expect(page.locator("#kb-readback-unavailable")).to_contain_text(str(probe.status_code))
    else:
        assert probe.status_code == 200, probe.text
        chunks = probe.json()["chunks"]
        assert chunks
        expect(page.locator("#kb-chunks li")).to_have_count(len(chunks))
        shown = page.locator("#kb-chunks").inner_text()
        assert word in shown
        assert XSS_SCRIPT in shown  # the document's HTML is text
        expect(page.locator("#kb-document-meta")).to_contain_text(document["id"])
    assert page.locator("#kb-document img, #kb-document script").count() == 0
    reader.scroll_into_view_if_needed()
    shot(page, "knowledge-base-document")
    reader.get_by_role("button", name="Close document").click()
    expect(reader).to_be_hidden()


def test_a_document_read_back_shows_its_chunks_as_text(
    page: Any, fake_gateway: GatewayProcess
) -> None:
    """The reader against the read-back's documented shape (the answer of
    ``GET /v1/documents/{id}?include=chunks`` given by the browser itself, whatever this
    gateway serves): fields, metadata and every chunk shown, HTML as text."""
    word = f"readback{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(DEVELOPER_KEY)) as api:
        api.post(
            "/v1/documents",
            json={"documents": [{"text": f"{word} notes", "source": f"{word}.md"}]},
        ).raise_for_status()
        listed = api.get("/v1/documents", params={"limit": 100}).json()["data"]
    document = next(d for d in listed if word in d["source"])
    answer = {
        "id": document["id"],
        "object": "document",
        "source": document["source"],
        "created_at": document["created_at"],
        "metadata": {"author": XSS_IMG, "lang": "en"},
        "chunks": [
            {"id": "c1", "text": f"First {word} {XSS_SCRIPT}", "page": 1,
             "heading_path": ["Notes", "Setup"], "start": 0, "end": 40},
            {"id": "c2", "text": f"Second {XSS_IMG}", "page": 2,
             "heading_path": ["Notes"], "start": 40, "end": 70},
        ],
    }  # fmt: skip
    asked: list[str] = []

    def read_back(route: Any) -> None:
        asked.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    page.route("**/v1/documents/*?include=chunks", read_back)
    sign_in(page, fake_gateway, DEVELOPER_KEY, "#/knowledge")
    page.locator("#kb-list tbody tr", has_text=word).get_by_role(
        "button", name=re.compile(r"^Read ")
    ).click()
    chunks = page.locator("#kb-chunks li")
    expect(chunks).to_have_count(2)
    assert asked == [f"{fake_gateway.url}/v1/documents/{document['id']}?include=chunks"]
    expect(chunks.nth(0)).to_contain_text("page 1 · Notes › Setup · characters 0–40")
    assert XSS_SCRIPT in chunks.nth(0).inner_text()
    assert XSS_IMG in chunks.nth(1).inner_text()
    meta = page.locator("#kb-document-meta")
    expect(meta).to_contain_text(document["id"])
    expect(meta).to_contain_text("metadata.author")
    assert XSS_IMG in meta.inner_text()
    assert page.locator("#kb-document img, #kb-document script").count() == 0
    assert unlabelled(page) == []
    assert unnamed_buttons(page) == []
    page.locator("#kb-document").scroll_into_view_if_needed()
    shot(page, "knowledge-base-read-back")


def test_a_standard_key_cannot_upload(page: Any, fake_gateway: GatewayProcess) -> None:
    sign_in(page, fake_gateway, STANDARD_KEY, "#/knowledge")
    page.get_by_label("Files (.md, .txt, .pdf, .docx, .html)").set_input_files(
        {"name": "a.md", "mimeType": "text/markdown", "buffer": b"text"}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#kb-uploaded .error")).to_contain_text("developer")


# --- health and metrics -----------------------------------------------------------------


def test_health_and_metrics_refresh_live(page: Any, fake_gateway: GatewayProcess) -> None:
    sign_in(page, fake_gateway, ADMIN_KEY, "#/health")
    expect(page.locator("#hm-health table")).to_be_visible()
    expect(page.locator("#hm-health")).to_contain_text("max_serve")
    expect(page.locator("#hm-routes table")).to_be_visible()
    page.get_by_label("Refresh every").select_option("2")
    with httpx.Client(base_url=fake_gateway.url, headers=bearer(STANDARD_KEY)) as api:
        for _ in range(30):
            api.get("/v1/models")
    # Three samples make two rates: every chart draws a line.
    expect(page.locator("#hm-charts figure polyline")).to_have_count(3, timeout=20_000)
    routes = page.locator("#hm-routes").inner_text()
    assert "/metrics" in routes
    assert "/v1/models" in routes
    # Per route: requests and errors per second, and latency p50/p95/p99, over time.
    models = page.locator('#hm-route-charts figure[data-route="/v1/models"]')
    expect(models.locator("polyline")).to_have_count(5, timeout=20_000)
    labels = models.locator("svg").evaluate_all("s => s.map((e) => e.getAttribute('aria-label'))")
    assert labels[0].startswith("Requests and errors per second: latest requests ")
    assert re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms$", labels[1]), labels[1]
    # The same figures as visible text, each series named in its line's colour.
    said = models.locator("small").all_inner_texts()
    assert re.fullmatch(
        r"Requests and errors per second: requests [\d.]+ /s, errors [\d.]+ /s", said[0]
    ), said
    assert models.locator("small .legend-s-p99").count() == 1
    page.locator("#hm-route-charts").scroll_into_view_if_needed()
    shot(page, "health-routes")
    page.locator("#hm-totals").scroll_into_view_if_needed()
    shot(page, "health")


# --- accessibility -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["playground", "memory", "knowledge", "keys", "health"])
def test_every_control_has_a_label(page: Any, fake_gateway: GatewayProcess, where: str) -> None:
    page.goto(f"{fake_gateway.url}/ui")
    assert unlabelled(page) == []
    sign_in(page, fake_gateway, ADMIN_KEY, f"#/{where}")
    expect(page.locator(f"#page-{where}")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert unlabelled(page) == []
    assert unnamed_buttons(page) == []
    assert page.locator("html").get_attribute("lang") == "en"
    # Every page is reachable from the keyboard: its link in the navigation takes focus.
    link = page.get_by_role("link", name=re.compile(where[:4], re.IGNORECASE)).first
    link.focus()
    assert page.evaluate("document.activeElement.tagName") == "A"


# --- measured ----------------------------------------------------------------------------


def test_playground_weight_and_first_paint(browser: Any, fake_gateway: GatewayProcess) -> None:
    """Figures, not limits on time: the bytes the playground transfers (from playwright's
    network events, a cold cache) and the first contentful paint in headless Chromium."""
    context, page = open_page(browser, fake_gateway)
    sizes: dict[str, int] = {}

    def finished(request: Any) -> None:
        size = request.sizes()
        sizes[request.url] = size["responseBodySize"] + size["responseHeadersSize"]

    page.on("requestfinished", finished)
    # Signed in already (the key in the tab's storage before the page loads): one cold
    # load of the playground, every file fetched.
    page.add_init_script(f"sessionStorage.setItem('gateway-console-key', '{STANDARD_KEY}')")
    try:
        page.goto(f"{fake_gateway.url}/ui#/playground")
        expect(page.locator("#pg-send")).to_be_visible()
        page.wait_for_load_state("networkidle")
        paint = page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
        )
        loaded = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        console_files = {u: s for u, s in sizes.items() if "/ui" in u}
        print({u.removeprefix(fake_gateway.url): s for u, s in sizes.items()})
        figures = {
            "requests": len(sizes),
            "console_files": len(console_files),
            "kb_transferred": round(sum(sizes.values()) / 1024, 1),
            "kb_console_files": round(sum(console_files.values()) / 1024, 1),
            "first_contentful_paint_ms": paint,
            "load_event_ms": loaded,
        }
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
        print(f"playground: {figures}")
        assert figures["kb_transferred"] < 100  # hand-written files, no framework
        assert paint is not None
        assert page.foreign == []
        assert page.problems == []
    finally:
        context.close()
