"""A cancelled ingest stops its chunking thread (a shutdown must not wait for it)."""

from __future__ import annotations

import asyncio
import threading

from application.knowledge_base import KnowledgeBase, NewDocument
from domain.chunking import chunk_text
from domain.documents import Scope
from domain.principal import Principal, Tier
from tests.fakes.fake_document_index import FakeDocumentIndex
from tests.fakes.fake_embedder import FakeEmbedder

ALICE = Principal("key_a", Tier.DEVELOPER, "acme")


class GatedEmbedder(FakeEmbedder):
    """Counts tokens only while the test lets it: each count waits for a permit, so the
    test decides how far the chunking thread gets."""

    def __init__(self) -> None:
        super().__init__()
        self.permits = threading.Semaphore(0)
        self.counted = 0
        self.five = threading.Event()

    def count_tokens(self, text: str) -> int:
        self.permits.acquire()
        self.counted += 1
        if self.counted == 5:
            self.five.set()
        return super().count_tokens(text)


async def test_a_cancelled_ingest_stops_chunking() -> None:
    embedder = GatedEmbedder()
    index = FakeDocumentIndex()
    knowledge_base = KnowledgeBase(embedder, index, chunk_text)
    text = "\n\n".join(f"Section {i}. " + "word " * 150 for i in range(500))
    ingest = asyncio.create_task(
        knowledge_base.ingest(ALICE, [NewDocument("big.md", text, {}, Scope.TENANT)])
    )
    embedder.permits.release(5)
    assert await asyncio.to_thread(embedder.five.wait, 30)  # the thread is chunking
    ingest.cancel()
    await asyncio.gather(ingest, return_exceptions=True)
    embedder.permits.release(10_000)  # whatever the thread does next, it may count
    for _ in range(50):
        await asyncio.sleep(0.01)
    # The thread stopped at its next count instead of chunking the whole document.
    assert embedder.counted <= 6
    assert index.summaries == {}  # nothing half-stored
