"""DocumentIndex adapters as the contract suite receives them, each with the test
embedder that makes its vectors. A pytest plugin: a test module loads it with
``pytest_plugins`` (and imports from it only for type checking, so that pytest is the
first to import it and rewrites its asserts)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient

from adapters.vector.qdrant_index import QdrantEdgeIndex, QdrantServerIndex
from domain.documents import (
    Chunk,
    Document,
    DocumentHit,
    Scope,
    SearchMode,
    SearchQuery,
    chunk_id_for,
    document_id_for,
)
from ports.document_index import DocumentIndex
from tests.conftest import free_port
from tests.fakes.fake_document_index import FakeDocumentIndex
from tests.fakes.fake_embedder import FakeEmbedder

DIMENSION = 64
TMPFS = Path("/dev/shm")


@dataclass
class IndexUnderTest:
    index: DocumentIndex
    embedder: FakeEmbedder = field(default_factory=lambda: FakeEmbedder(DIMENSION))

    async def ingest(
        self,
        tenant: str,
        source: str,
        texts: Sequence[str],
        *,
        scope: Scope = Scope.TENANT,
        metadata: Mapping[str, Any] | None = None,
        vectors: Sequence[Sequence[float]] | None = None,
    ) -> Document:
        """``texts`` as the chunks of one document, as the knowledge base stores it
        (embedded by the test embedder unless ``vectors`` are given)."""
        document = Document(
            id=document_id_for(tenant, scope, source),
            tenant="*" if scope is Scope.GLOBAL else tenant,
            source=source,
            text="\n\n".join(texts),
            scope=scope,
            metadata=dict(metadata or {}),
        )
        chunks = [
            Chunk(chunk_id_for(document.id, i), document.id, i, t) for i, t in enumerate(texts)
        ]
        if vectors is None:
            vectors = await self.embedder.embed_documents(texts)
        await self.index.replace(document, chunks, vectors)
        return document

    async def search(
        self,
        tenant: str,
        text: str,
        *,
        k: int = 3,
        mode: SearchMode = SearchMode.HYBRID,
        threshold: float | None = None,
        filter: Mapping[str, Any] | None = None,
        vector: Sequence[float] | None = None,
    ) -> list[DocumentHit]:
        if vector is None:
            vector = await self.embedder.embed_query(text)
        query = SearchQuery(tenant, text, tuple(vector), k, threshold, dict(filter or {}), mode)
        return await self.index.search(query)

    def on(self, index: DocumentIndex) -> IndexUnderTest:
        """The same embedder on another index (e.g. the same store, reopened)."""
        return replace(self, index=index)


@pytest.fixture
def fake_document_index() -> IndexUnderTest:
    return IndexUnderTest(FakeDocumentIndex())


@pytest.fixture
def shard_directory(tmp_path: Path) -> Iterator[Path]:
    """On tmpfs where there is one: a new shard's fsyncs cost ~1 s on a disk."""
    if not TMPFS.is_dir():
        yield tmp_path / "documents"
        return
    directory = Path(tempfile.mkdtemp(prefix="edge-", dir=TMPFS))
    yield directory / "documents"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def edge_document_index(shard_directory: Path) -> AsyncIterator[IndexUnderTest]:
    index = QdrantEdgeIndex(shard_directory, DIMENSION)
    yield IndexUnderTest(index)
    await index.close()


@pytest.fixture
async def server_document_index() -> AsyncIterator[IndexUnderTest]:
    """The server adapter on qdrant-client's local mode: the same client API, no server."""
    client = AsyncQdrantClient(":memory:")
    yield IndexUnderTest(QdrantServerIndex(client, DIMENSION))
    await client.close()


@pytest.fixture(
    params=[
        pytest.param("fake_document_index", id="fake"),
        pytest.param("edge_document_index", id="qdrant-edge"),
        pytest.param("server_document_index", id="qdrant-server:memory"),
    ]
)
def document_index(request: pytest.FixtureRequest) -> IndexUnderTest:
    """Every DocumentIndex adapter, as the contract suite receives it."""
    under_test: IndexUnderTest = request.getfixturevalue(request.param)
    return under_test


@pytest.fixture
async def unreachable_server_index() -> AsyncIterator[IndexUnderTest]:
    """The server adapter pointed at a loopback port nobody listens on."""
    client = AsyncQdrantClient(
        url=f"http://127.0.0.1:{free_port()}", timeout=1, check_compatibility=False
    )
    yield IndexUnderTest(QdrantServerIndex(client, DIMENSION))
    await client.close()
