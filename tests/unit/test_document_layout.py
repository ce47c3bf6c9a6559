"""The order of a search's hits does not depend on how the engine broke a tie."""

from __future__ import annotations

from typing import Any

from adapters.vector.document_layout import best_hits
from domain.documents import SearchMode, SearchQuery


def _payload(document_id: str) -> dict[str, Any]:
    return {
        "text": f"{document_id} text",
        "document_id": document_id,
        "source": f"{document_id}.md",
        "chunk_index": 0,
    }


def _found(
    order: list[str], scores: dict[str, float]
) -> list[tuple[dict[str, Any], float, list[float]]]:
    return [(_payload(d), scores[d], [1.0, 0.0]) for d in order]


def test_hits_of_equal_score_come_in_one_order_whatever_order_the_engine_gave() -> None:
    # Fused (RRF) scores tie exactly when two chunks swap ranks between retrievers.
    scores = {"doc_a": 0.5, "doc_b": 0.5, "doc_c": 0.5, "doc_top": 0.9}
    query = SearchQuery("acme", "q", (1.0, 0.0), k=3, mode=SearchMode.HYBRID)
    one = best_hits(query, [1.0, 0.0], _found(["doc_top", "doc_a", "doc_b", "doc_c"], scores))
    other = best_hits(query, [1.0, 0.0], _found(["doc_top", "doc_c", "doc_b", "doc_a"], scores))
    assert [h.metadata["document_id"] for h in one] == [h.metadata["document_id"] for h in other]
    assert one[0].metadata["document_id"] == "doc_top"  # a higher score still comes first
    assert len(one) == 3


def test_the_store_order_by_score_is_kept() -> None:
    scores = {"doc_a": 0.2, "doc_b": 0.7, "doc_c": 0.4}
    query = SearchQuery("acme", "q", (1.0, 0.0), k=3, mode=SearchMode.HYBRID)
    hits = best_hits(query, [1.0, 0.0], _found(["doc_b", "doc_c", "doc_a"], scores))
    assert [h.metadata["document_id"] for h in hits] == ["doc_b", "doc_c", "doc_a"]
