"""Uploads to the knowledge base: files of every format read by their content, streamed
to disk (never held whole, removed after), refused with 413 before a body over the limit
is read, unreadable files named with their reason while the others of the upload are
ingested, and documents read back with their chunks.

The gateway is served in process; what needs bytes sent piece by piece over a socket
(a body refused before it is read, a client gone mid-upload) has a real gateway process
on the same configuration."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import document_files as files
from tests.conftest import FakeUpstream, GatewayProcess, start_gateway, stop
from tests.e2e.clients import Gateway, api_client
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

LIMIT = 2 * 1024 * 1024  # GATEWAY_MAX_DOCUMENT_BYTES of this module's gateway
ACME, GLOBEX, ADMIN = "sk-acme-dev", "sk-globex-dev", "sk-acme-admin"


def env_for(fake_upstream: FakeUpstream) -> dict[str, str]:
    return {
        "MAX_SERVE_URL": fake_upstream.url,
        "API_KEYS": f"{ACME}:developer:acme,{GLOBEX}:developer:globex,{ADMIN}:admin:acme",
        "GATEWAY_MAX_DOCUMENT_BYTES": str(LIMIT),
    }


@pytest.fixture(scope="module")
def gateway(
    request: pytest.FixtureRequest,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessGateway]:
    here = [item for item in request.session.items if item.module is request.module]
    if any("process" in item.fixturenames for item in here):
        request.getfixturevalue("starting_process")  # it starts while these tests run
    with in_process_gateway(env_for(fake_upstream), tmp_path_factory.mktemp("uploads")) as app:
        yield app


@pytest.fixture(scope="module")
def starting_process(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[GatewayProcess]]:
    """The same configuration as a process, for bodies sent piece by piece over a
    socket: started in the background (a start mostly waits)."""
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(
            start_gateway, env_for(fake_upstream), tmp_path_factory.mktemp("uploads-process")
        )
        try:
            yield starting
        finally:
            if starting.exception() is None:
                stop(starting.result().process)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def process(starting_process: Future[GatewayProcess]) -> GatewayProcess:
    return starting_process.result()


def uploads_dir(gateway: Gateway) -> Path:
    if isinstance(gateway, InProcessGateway):
        return gateway.settings.data_path / "uploads"
    return gateway.log_path.parent / "data" / "uploads"


def spooled(gateway: Gateway) -> list[Path]:
    folder = uploads_dir(gateway)
    return sorted(folder.rglob("*")) if folder.exists() else []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def upload(client: httpx.Client, *named: tuple[str, bytes], **data: str) -> httpx.Response:
    return client.post("/v1/documents", files=[("file", n) for n in named], data=data)


def test_pdf_upload_is_read_back_with_pages(gateway: InProcessGateway) -> None:
    name = unique("manual") + ".pdf"
    pages = [[f"Page {n} explains step {i} of the descaling." for i in range(25)] for n in (1, 2)]
    with api_client(gateway, ACME) as client:
        response = upload(client, (name, files.pdf(pages)), metadata='{"team": "ops"}')
        assert response.status_code == 201, response.text
        [ingested] = response.json()["data"]
        assert response.json()["errors"] == []
        plain = client.get(f"/v1/documents/{ingested['id']}").json()
        full = client.get(f"/v1/documents/{ingested['id']}", params={"include": "chunks"}).json()
    assert ingested["source"] == name
    assert not ingested["replaced"]
    assert "chunks" not in plain
    assert plain["source"] == name
    assert plain["metadata"] == {"team": "ops"}
    assert plain["chunk_count"] == ingested["chunk_count"] == len(full["chunks"])
    assert {p for c in full["chunks"] for p in [c["page"]]} == {1, 2}
    for chunk in full["chunks"]:
        assert set(chunk) == {"id", "text", "page", "heading_path", "start", "end"}
        assert f"Page {chunk['page']} explains" in chunk["text"]
        assert chunk["start"] < chunk["end"]
    assert spooled(gateway) == []  # the spooled upload is gone


def test_docx_and_html_keep_headings_and_tables(gateway: InProcessGateway) -> None:
    word = files.docx(
        [("h1", "Price list"), ("h2", "Drinks"), ("table", [["Item", "Price"], ["Tea", "3"]])]
    )
    page = b"<html><body><h1>Guide</h1><script>evil()</script><p>Hello there.</p></body></html>"
    with api_client(gateway, ACME) as client:
        response = upload(client, (unique("prices") + ".docx", word), (unique("g") + ".html", page))
        assert response.status_code == 201, response.text
        first, second = response.json()["data"]
        docx_chunks = client.get(f"/v1/documents/{first['id']}?include=chunks").json()["chunks"]
        html_chunks = client.get(f"/v1/documents/{second['id']}?include=chunks").json()["chunks"]
    [table] = [c for c in docx_chunks if "| Tea | 3 |" in c["text"]]
    assert "| Item | Price |" in table["text"]
    assert table["heading_path"] == ["Price list", "Drinks"]
    assert all("evil" not in c["text"] for c in html_chunks)
    assert html_chunks[0]["heading_path"] == ["Guide"]


def test_bad_files_are_named_and_the_others_of_the_upload_are_ingested(
    gateway: InProcessGateway,
) -> None:
    good = unique("good") + ".md"
    bad = {
        unique("corrupt") + ".pdf": (files.corrupt_pdf(), "not a readable PDF"),
        unique("locked") + ".pdf": (files.encrypted_pdf(), "encrypted"),
        unique("scan") + ".pdf": (files.scanned_pdf(), "no text layer"),
        unique("bomb") + ".docx": (files.zip_bomb_docx(), "zip bomb"),
    }
    named = [(n, data) for n, (data, _) in bad.items()] + [(good, b"# Good\n\nA fine file.")]
    with api_client(gateway, ACME) as client:
        response = upload(client, *named)
        listed = {d["source"] for d in client.get("/v1/documents?limit=100").json()["data"]}
    assert response.status_code == 201, response.text
    body = response.json()
    assert [d["source"] for d in body["data"]] == [good]
    errors = {e["source"]: e for e in body["errors"]}
    assert set(errors) == set(bad)
    for name, (_, reason) in bad.items():
        assert errors[name]["status"] == 400
        assert name in errors[name]["message"]
        assert reason in errors[name]["message"]
    assert good in listed
    assert not set(bad) & listed
    assert spooled(gateway) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [("../../etc/passwd.md", "`..`"), ("evil\nname.md", "control characters")],
    ids=["dot-dot", "newline"],
)
def test_a_file_name_that_cannot_be_a_source_is_400(
    gateway: InProcessGateway, name: str, reason: str
) -> None:
    with api_client(gateway, ACME) as client:
        response = upload(client, (name, b"Some text."))
    error = assert_openai_error(response, 400, param="file")
    assert reason in error["message"]


def test_an_unknown_binary_is_415_naming_the_file(gateway: InProcessGateway) -> None:
    with api_client(gateway, ACME) as client:
        response = upload(client, ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(300)))
    error = assert_openai_error(response, 415, code="unsupported_media_type")
    assert error["message"].startswith("photo.png: ")


def _raw_post(gateway: GatewayProcess, head: bytes, body: Iterator[bytes]) -> tuple[bytes, int]:
    """Sends ``head`` then ``body`` piece by piece until the gateway answers; returns its
    answer and how many body bytes were sent by then."""
    sent = 0
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for piece in body:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(piece)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        sock.setblocking(True)
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                more = sock.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            answer += more
    return answer, sent


def _multipart_head(content_length: int | None) -> bytes:
    length = (
        f"Content-Length: {content_length}\r\n"
        if content_length is not None
        else "Transfer-Encoding: chunked\r\n"
    )
    return (
        "POST /v1/documents HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ACME}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"{length}\r\n"
    ).encode()


def _file_part() -> bytes:
    return b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'


def test_a_100_mb_upload_is_413_before_it_is_read(process: GatewayProcess) -> None:
    # Only the first bytes of the announced 100 MB are ever sent: a gateway that read
    # the body before refusing it would wait for the rest (and answer 408, not 413).
    answer, sent = _raw_post(process, _multipart_head(100 * 1024 * 1024), iter([_file_part()]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request_too_large" in answer
    assert sent < 1024
    assert spooled(process) == []


def test_a_streamed_upload_is_413_when_it_passes_the_limit(process: GatewayProcess) -> None:
    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it early
        piece = _file_part()
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        block = b"y" * 65536
        for _ in range(100 * 16):
            yield f"{len(block):x}\r\n".encode() + block + b"\r\n"

    answer, sent = _raw_post(process, _multipart_head(None), body())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Soon after the limit (what socket buffers hold aside), not at the end of 100 MB.
    assert sent < 50 * 1024 * 1024
    time.sleep(0.5)
    assert spooled(process) == []


def test_an_upload_cut_short_leaves_no_file_behind(process: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:
        sock.sendall(_multipart_head(LIMIT - 1024) + _file_part() + b"z" * 300_000)
        deadline = time.monotonic() + 30
        while not spooled(process) and time.monotonic() < deadline:
            time.sleep(0.05)  # the gateway has started spooling it
        assert spooled(process), "the upload was not spooled"
    # The client is gone mid-body: the spooled file goes with it.
    deadline = time.monotonic() + 30
    while spooled(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spooled(process) == []


def test_read_back_follows_tenancy(gateway: InProcessGateway) -> None:
    with (
        api_client(gateway, ACME) as acme,
        api_client(gateway, GLOBEX) as globex,
        api_client(gateway, ADMIN) as admin,
    ):
        mine = acme.post("/v1/documents", json={"text": "Acme only.", "source": unique("a")})
        shared = admin.post(
            "/v1/documents",
            json={"text": "For all.", "source": unique("g"), "scope": "global"},
        )
        own_id, global_id = mine.json()["id"], shared.json()["id"]
        hidden = globex.get(f"/v1/documents/{own_id}")
        seen = globex.get(f"/v1/documents/{global_id}", params={"include": "chunks"})
        missing = acme.get("/v1/documents/doc_nothing")
        bad_include = acme.get(f"/v1/documents/{own_id}", params={"include": "vectors"})
    assert_openai_error(hidden, 404, param="id")
    assert seen.status_code == 200
    assert seen.json()["scope"] == "global"
    assert seen.json()["chunks"][0]["text"] == "For all."
    assert_openai_error(missing, 404, param="id")
    assert_openai_error(bad_include, 400, param="include")


def test_list_filters_by_source_prefix_and_metadata(gateway: InProcessGateway) -> None:
    prefix = unique("proj") + "/"
    documents = [
        {"text": "One.", "source": f"{prefix}a.md", "metadata": {"lang": "en", "draft": True}},
        {"text": "Two.", "source": f"{prefix}b.md", "metadata": {"lang": "fr", "draft": False}},
        {"text": "Three.", "source": f"other-{prefix}c.md", "metadata": {"lang": "en"}},
    ]
    with api_client(gateway, ACME) as client:
        assert client.post("/v1/documents", json={"documents": documents}).status_code == 201

        def sources(**params: Any) -> list[str]:
            response = client.get("/v1/documents", params={"limit": 100, **params})
            assert response.status_code == 200, response.text
            return sorted(d["source"] for d in response.json()["data"])

        assert sources(source=prefix) == [f"{prefix}a.md", f"{prefix}b.md"]
        assert sources(source=prefix, **{"metadata.lang": "en"}) == [f"{prefix}a.md"]
        assert sources(source=prefix, **{"metadata.draft": "false"}) == [f"{prefix}b.md"]


def test_replacing_says_so_and_chunk_size_is_per_request(gateway: InProcessGateway) -> None:
    source = unique("sized") + ".md"
    text = " ".join(f"Sentence {n} of a long text about espresso." for n in range(120))
    with api_client(gateway, ACME) as client:
        first = client.post("/v1/documents", json={"text": text, "source": source})
        again = client.post(
            "/v1/documents",
            json={"text": text, "source": source, "chunk_size": 64, "chunk_overlap": 8},
        )
        bad = client.post(
            "/v1/documents",
            json={"text": text, "source": source, "chunk_size": 64, "chunk_overlap": 64},
        )
        by_form = upload(client, (source, text.encode()), chunk_size="32", chunk_overlap="0")
    assert first.status_code == again.status_code == 201
    assert first.json()["replaced"] is False
    assert again.json()["replaced"] is True
    assert again.json()["chunk_count"] > first.json()["chunk_count"]
    assert_openai_error(bad, 400, param="chunk_overlap")
    assert by_form.status_code == 201, by_form.text
    assert by_form.json()["data"][0]["chunk_count"] > again.json()["chunk_count"]
