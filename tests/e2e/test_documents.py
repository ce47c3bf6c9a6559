"""The knowledge base over HTTP: ``/v1/documents``, ``/v1/rag/search`` and
``/v1/embeddings`` on real gateways (the embedded MiniLM embedder and Qdrant Edge, or an
unreachable Qdrant server): the session's shared processes, and this module's own
configurations served in process. None of these tests generates text."""

from __future__ import annotations

import base64
import math
import uuid
from array import array
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ROOT, FakeUpstream, GatewayProcess, free_port
from tests.document_files import pdf
from tests.e2e.clients import api_client
from tests.e2e.conftest import ADMIN_KEY, DEVELOPER_KEY, STANDARD_KEY
from tests.e2e.openai_errors import assert_openai_error
from tests.in_process import InProcessGateway, in_process_gateway

CORPUS = ROOT / "examples" / "corpus"
PRODUCT_CODE = "ACME-GOLD-7731"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # what the embedded embedder reports as its model
DIMENSION = 384
SMALL_LIMIT = 4096  # GATEWAY_MAX_DOCUMENT_BYTES of the small gateway
ACME_KEY, GLOBEX_KEY, ACME_ADMIN_KEY = "sk-a", "sk-b", "sk-root"


def unique(prefix: str) -> str:
    """A name no other test (of this session's shared gateways) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def all_documents(client: httpx.Client, limit: int = 100) -> list[dict[str, Any]]:
    """Every document the client's key sees, following ``after`` page by page."""
    documents: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = client.get("/v1/documents", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["object"] == "list"
        documents.extend(page["data"])
        if not page["has_more"]:
            return documents
        params["after"] = page["data"][-1]["id"]


def ingest(client: httpx.Client, text: str, source: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/documents", json={"text": text, "source": source, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def search(client: httpx.Client, query: str, k: int = 3, **fields: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/rag/search", json={"query": query, "k": k, **fields})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return list(body["data"])


@pytest.fixture(scope="module")
def small_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """Two tenants (acme, globex), an acme admin and a 4 KiB document limit."""
    env = {
        "MAX_SERVE_URL": fake_upstream.url,
        "API_KEYS": f"{ACME_KEY}:developer:acme,{GLOBEX_KEY}:developer:globex,"
        f"{ACME_ADMIN_KEY}:admin:acme",
        "GATEWAY_MAX_DOCUMENT_BYTES": str(SMALL_LIMIT),
    }
    with in_process_gateway(env, tmp_path_factory.mktemp("small")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def qdrant_down_gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    """QDRANT_URL points at a port nobody listens on."""
    env = {"MAX_SERVE_URL": fake_upstream.url, "QDRANT_URL": f"http://127.0.0.1:{free_port()}"}
    with in_process_gateway(env, tmp_path_factory.mktemp("qdrant_down")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def acme_corpus(embedded_gateway: GatewayProcess) -> str:
    """``examples/corpus`` ingested under a prefix of its own; returns the prefix, which
    is also the documents' ``corpus`` metadata."""
    prefix = unique("acme")
    documents = [
        {
            "text": path.read_text(),
            "source": f"{prefix}/{path.relative_to(CORPUS).as_posix()}",
            "metadata": {"corpus": prefix, "section": path.parent.name},
        }
        for path in sorted(CORPUS.rglob("*.md"))
    ]
    with api_client(embedded_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", json={"documents": documents})
    assert response.status_code == 201, response.text
    return prefix


# --- ingesting ------------------------------------------------------------------------


def test_json_ingest_returns_201_with_id_and_chunk_count(fake_gateway: GatewayProcess) -> None:
    source = unique("guide") + ".md"
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        body = ingest(client, "Check-in opens three hours before departure.", source)
    assert body["object"] == "document"
    assert body["id"].startswith("doc_")
    assert body["source"] == source
    assert body["chunk_count"] == 1


def test_batch_ingest_returns_one_entry_per_document(fake_gateway: GatewayProcess) -> None:
    sources = [unique("batch") for _ in range(3)]
    documents = [
        {"text": f"Batch document number {n}.", "source": s} for n, s in enumerate(sources)
    ]
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", json={"documents": documents})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["object"] == "list"
    assert [d["source"] for d in body["data"]] == sources
    assert all(d["chunk_count"] == 1 and d["object"] == "document" for d in body["data"])
    assert len({d["id"] for d in body["data"]}) == 3


def test_multipart_upload_of_a_markdown_file(fake_gateway: GatewayProcess) -> None:
    name = unique("upload") + ".md"
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(
            "/v1/documents",
            files={"file": (name, b"# Upload\n\nUploaded as a file.", "text/markdown")},
            data={"metadata": '{"team": "docs"}'},
        )
        assert response.status_code == 201, response.text
        [ingested] = response.json()["data"]
        listed = {d["id"]: d for d in all_documents(client)}
    assert ingested["source"] == name
    assert listed[ingested["id"]]["metadata"] == {"team": "docs"}


def test_multipart_upload_of_two_files(fake_gateway: GatewayProcess) -> None:
    names = [unique("first") + ".md", unique("second") + ".txt"]
    files = [("file", (name, f"The file {name}.".encode(), "text/plain")) for name in names]
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", files=files)
    assert response.status_code == 201, response.text
    assert [d["source"] for d in response.json()["data"]] == names


def test_pdf_upload_is_ingested_and_found(fake_gateway: GatewayProcess) -> None:
    word, name = unique("heliotrope"), unique("report") + ".pdf"
    filler = [f"Line {n} of the quarterly report on sales." for n in range(40)]
    data = pdf([filler, [*filler, f"The {word} project closed on time."]])
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", files={"file": (name, data, "application/pdf")})
        hits = search(client, word, k=1, filter={"source": name})
    assert response.status_code == 201, response.text
    assert response.json()["data"][0]["source"] == name
    assert word in hits[0]["text"]
    assert hits[0]["metadata"]["page"] == 2


def test_a_truncated_pdf_is_400_naming_the_file(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post(
            "/v1/documents", files={"file": ("report.pdf", b"%PDF-1.7\n", "application/pdf")}
        )
    error = assert_openai_error(response, 400, code="unreadable_document")
    assert error["message"].startswith("report.pdf: ")


@pytest.mark.parametrize("text", ["", "  \n\t "], ids=["empty", "blank"])
def test_empty_text_is_400_naming_text(fake_gateway: GatewayProcess, text: str) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", json={"text": text, "source": unique("empty")})
    assert_openai_error(response, 400, param="text")


def test_missing_source_is_400(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", json={"text": "No source given."})
    error = assert_openai_error(response, 400)
    assert "source" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"text": "No source given."}, "source"),
        ({"documents": [{"text": "No source given."}]}, "documents[0].source"),
    ],
    ids=["single", "batch"],
)
def test_missing_source_names_the_field(
    fake_gateway: GatewayProcess, body: dict[str, Any], param: str
) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        response = client.post("/v1/documents", json=body)
    assert_openai_error(response, 400, param=param)


@pytest.mark.parametrize("how", ["json", "multipart"])
def test_document_over_the_limit_is_413(small_gateway: InProcessGateway, how: str) -> None:
    text = "x" * (SMALL_LIMIT + 1)
    with api_client(small_gateway, ACME_KEY) as client:
        if how == "json":
            response = client.post("/v1/documents", json={"text": text, "source": "big.md"})
        else:
            response = client.post("/v1/documents", files={"file": ("big.md", text.encode())})
    assert_openai_error(response, 413, code="request_too_large")


def test_same_source_again_replaces_the_document(fake_gateway: GatewayProcess) -> None:
    source, case = unique("replaced") + ".md", unique("case")
    old_word, new_word = unique("zebrafinch"), unique("kingfisher")
    long_text = "\n\n".join(
        f"Paragraph {n} about the {new_word}: " + "it fishes from a low branch over the river. " * 8
        for n in range(8)
    )
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        first = ingest(
            client, f"The {old_word} nests in the barn.", source, metadata={"case": case}
        )
        second = ingest(client, long_text, source, metadata={"case": case})
        listed = [d for d in all_documents(client) if d["source"] == source]
        old_hits = search(client, old_word, k=10, filter={"case": case})
        new_hits = search(client, new_word, k=1, filter={"case": case})
    assert second["id"] == first["id"]
    assert second["chunk_count"] > first["chunk_count"] == 1
    assert [(d["id"], d["chunk_count"]) for d in listed] == [(first["id"], second["chunk_count"])]
    assert old_hits, "the new chunks are still found by their own words"
    assert not any(old_word in hit["text"] for hit in old_hits)
    assert new_word in new_hits[0]["text"]


# --- tiers and tenants ----------------------------------------------------------------


def test_standard_key_reads_but_may_not_write(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway, STANDARD_KEY) as client:
        posted = client.post("/v1/documents", json={"text": "x", "source": unique("std")})
        uploaded = client.post("/v1/documents", files={"file": ("std.md", b"x")})
        deleted = client.delete("/v1/documents/doc_any")
        listed = client.get("/v1/documents")
        searched = client.post("/v1/rag/search", json={"query": "anything"})
    for response in (posted, uploaded, deleted):
        assert_openai_error(response, 403, code="insufficient_tier")
    assert listed.status_code == 200, listed.text
    assert searched.status_code == 200, searched.text


def test_global_scope_needs_an_admin_key(fake_gateway: GatewayProcess) -> None:
    document = {"text": "For everyone.", "source": unique("global"), "scope": "global"}
    with api_client(fake_gateway, DEVELOPER_KEY) as developer:
        refused = developer.post("/v1/documents", json=document)
    with api_client(fake_gateway, ADMIN_KEY) as admin:
        accepted = admin.post("/v1/documents", json=document)
    with api_client(fake_gateway, STANDARD_KEY) as reader:
        listed = {d["id"]: d for d in all_documents(reader)}
    error = assert_openai_error(refused, 403, code="insufficient_tier")
    assert "global" in error["message"]
    assert accepted.status_code == 201, accepted.text
    assert listed[accepted.json()["id"]]["scope"] == "global"


def test_global_document_of_an_admin_is_seen_by_every_tenant(
    small_gateway: InProcessGateway,
) -> None:
    word = unique("lighthouse")
    with api_client(small_gateway, ACME_ADMIN_KEY) as admin:
        posted = ingest(admin, f"The {word} is open to all.", unique("global"), scope="global")
    with api_client(small_gateway, GLOBEX_KEY) as globex:
        listed = {d["id"]: d for d in all_documents(globex)}
        hits = search(globex, word, k=1)
        not_theirs = globex.delete(f"/v1/documents/{posted['id']}")
    assert listed[posted["id"]]["scope"] == "global"
    assert word in hits[0]["text"]
    assert_openai_error(not_theirs, 404, param="id")


def test_a_tenant_never_sees_another_tenants_documents(small_gateway: InProcessGateway) -> None:
    word, source = unique("marmalade"), unique("secret") + ".md"
    with (
        api_client(small_gateway, ACME_KEY) as acme,
        api_client(small_gateway, GLOBEX_KEY) as globex,
    ):
        mine = ingest(acme, f"The {word} recipe of acme.", source)
        listed = [d["id"] for d in all_documents(globex)]
        hits = search(globex, word, k=10)
        deleted = globex.delete(f"/v1/documents/{mine['id']}")
        theirs = ingest(globex, "Globex's own document with the same source.", source)
        still_mine = {d["id"]: d for d in all_documents(acme)}
        acme_hits = search(acme, word, k=1)
    assert mine["id"] not in listed
    assert not any(word in hit["text"] for hit in hits)
    assert_openai_error(deleted, 404, param="id")
    assert theirs["id"] != mine["id"]
    assert theirs["id"] not in still_mine
    assert still_mine[mine["id"]]["source"] == source
    assert word in acme_hits[0]["text"]


# --- listing and deleting -------------------------------------------------------------


def test_list_is_paged_with_limit_and_after(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        ids = {ingest(client, f"Paged document {n}.", unique("paged"))["id"] for n in range(3)}
        first = client.get("/v1/documents", params={"limit": 1}).json()
        pages, params = [], {"limit": 2}
        while True:
            page = client.get("/v1/documents", params=params).json()
            pages.append(page)
            if not page["has_more"]:
                break
            params["after"] = page["data"][-1]["id"]
    assert len(first["data"]) == 1
    assert first["has_more"] is True
    seen = [d["id"] for page in pages for d in page["data"]]
    assert ids <= set(seen)
    assert len(seen) == len(set(seen)), "a document appears on two pages"
    assert seen == sorted(seen)
    assert all(len(page["data"]) <= 2 for page in pages)
    assert all(page["has_more"] for page in pages[:-1])


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_out_of_range_is_400(fake_gateway: GatewayProcess, limit: int) -> None:
    with api_client(fake_gateway) as client:
        response = client.get("/v1/documents", params={"limit": limit})
    assert_openai_error(response, 400, param="limit")


def test_delete_then_a_second_delete_is_404(fake_gateway: GatewayProcess) -> None:
    with api_client(fake_gateway, DEVELOPER_KEY) as client:
        posted = ingest(client, "Soon gone.", unique("deleted"))
        deleted = client.delete(f"/v1/documents/{posted['id']}")
        again = client.delete(f"/v1/documents/{posted['id']}")
        listed = [d["id"] for d in all_documents(client)]
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": posted["id"], "object": "document", "deleted": True}
    assert_openai_error(again, 404, param="id", code="not_found")
    assert posted["id"] not in listed


# --- search ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 11])
def test_search_k_out_of_range_is_400(fake_gateway: GatewayProcess, k: int) -> None:
    with api_client(fake_gateway) as client:
        response = client.post("/v1/rag/search", json={"query": "refunds", "k": k})
    assert_openai_error(response, 400, param="k")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (PRODUCT_CODE, "loyalty-program.md"),
        ("How heavy may my cabin bag be?", "baggage-rules.md"),
        ("When can I phone customer service?", "support-hours.md"),
    ],
    ids=["product-code", "cabin-bag", "phone-hours"],
)
def test_search_finds_the_right_document_first(
    embedded_gateway: GatewayProcess, acme_corpus: str, query: str, expected: str
) -> None:
    with api_client(embedded_gateway) as client:
        hits = search(client, query, k=3, filter={"corpus": acme_corpus})
    assert hits[0]["metadata"]["source"] == f"{acme_corpus}/{expected}", hits
    assert -1.0 <= hits[0]["score"] <= 1.0


def test_exact_product_code_is_the_top_hit_unfiltered(
    embedded_gateway: GatewayProcess, acme_corpus: str
) -> None:
    with api_client(embedded_gateway) as client:
        hits = search(client, PRODUCT_CODE, k=5)
    assert PRODUCT_CODE in hits[0]["text"]


def test_filter_narrows_the_results(embedded_gateway: GatewayProcess, acme_corpus: str) -> None:
    query = "How long does a refund take?"
    with api_client(embedded_gateway) as client:
        everything = search(client, query, k=10, filter={"corpus": acme_corpus})
        destinations = search(
            client, query, k=10, filter={"corpus": acme_corpus, "section": "destinations"}
        )
    assert everything[0]["metadata"]["source"] == f"{acme_corpus}/refund-policy.md"
    assert len(everything) > len(destinations) > 0
    assert {h["metadata"]["section"] for h in destinations} == {"destinations"}
    assert all(
        h["metadata"]["source"].startswith(f"{acme_corpus}/destinations/") for h in destinations
    )


# --- embeddings -----------------------------------------------------------------------


def embeddings(gateway: GatewayProcess, **body: Any) -> httpx.Response:
    with api_client(gateway) as client:
        return client.post("/v1/embeddings", json=body)


def test_embedding_of_a_string_has_openai_shape(embedded_gateway: GatewayProcess) -> None:
    response = embeddings(embedded_gateway, input="Where is my suitcase?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == EMBEDDING_MODEL
    [item] = body["data"]
    assert item["object"] == "embedding"
    assert item["index"] == 0
    assert len(item["embedding"]) == DIMENSION
    assert math.isclose(math.hypot(*item["embedding"]), 1.0, rel_tol=1e-3)
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]


def test_embeddings_of_a_list_keep_its_order(embedded_gateway: GatewayProcess) -> None:
    texts = ["refunds", "a much longer sentence about checked baggage allowances", "Kyoto"]
    batch = embeddings(embedded_gateway, input=texts, model=EMBEDDING_MODEL).json()
    alone = [embeddings(embedded_gateway, input=text).json()["data"][0] for text in texts]
    assert [item["index"] for item in batch["data"]] == [0, 1, 2]
    for item, single in zip(batch["data"], alone, strict=True):
        assert len(item["embedding"]) == DIMENSION
        assert _cosine(item["embedding"], single["embedding"]) > 0.999


def test_base64_embedding_decodes_to_float32(embedded_gateway: GatewayProcess) -> None:
    text = "Lounge access for Gold members"
    floats = embeddings(embedded_gateway, input=text).json()["data"][0]["embedding"]
    encoded = embeddings(embedded_gateway, input=text, encoding_format="base64").json()
    vector = array("f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert len(vector) == DIMENSION
    assert _cosine(list(vector), floats) > 0.9999


def test_unknown_embedding_model_is_404(embedded_gateway: GatewayProcess) -> None:
    response = embeddings(embedded_gateway, input="x", model="text-embedding-3-large")
    assert_openai_error(response, 404, code="model_not_found")


def test_openai_sdk_creates_embeddings(embedded_gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{embedded_gateway.url}/v1", api_key=STANDARD_KEY)
    reply = client.embeddings.create(model=EMBEDDING_MODEL, input=["Kyoto", "Lisbon"])
    assert reply.model == EMBEDDING_MODEL
    assert [len(item.embedding) for item in reply.data] == [DIMENSION, DIMENSION]
    assert reply.usage.prompt_tokens > 0


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.hypot(*a) * math.hypot(*b))


# --- Qdrant unreachable ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/documents", {"text": "Kept nowhere.", "source": "nowhere.md"}),
        ("GET", "/v1/documents", None),
        ("POST", "/v1/rag/search", {"query": "refunds"}),
        ("DELETE", "/v1/documents/doc_any", None),
    ],
    ids=["ingest", "list", "search", "delete"],
)
def test_qdrant_unreachable_is_503(
    qdrant_down_gateway: InProcessGateway, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with api_client(qdrant_down_gateway, DEVELOPER_KEY, timeout=15) as client:
        response = client.request(method, path, json=body)
    assert_openai_error(response, 503, code="index_unavailable")


def test_qdrant_unreachable_degrades_health(qdrant_down_gateway: InProcessGateway) -> None:
    with api_client(qdrant_down_gateway, None, timeout=15) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["status"] == "degraded"
    assert health["services"]["qdrant"]["status"] == "unhealthy"
    assert health["services"]["max_serve"]["status"] == "healthy"
