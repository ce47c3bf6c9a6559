"""The stages of a ``/v1/chat`` turn, as its metadata, metrics and traces name them."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A ``StrEnum``: each member is its name on the wire, in metric labels and logs."""

    EMBEDDING = "embedding"
    MEMORY_RETRIEVAL = "memory_retrieval"
    RAG_RETRIEVAL = "rag_retrieval"
    GENERATION = "generation"
    TOTAL_LATENCY = "total_latency"
    # What a degraded answer may name besides the stages above.
    MEMORY = "memory"  # memory as a whole (off without a user_id)
    RETRIEVAL = "retrieval"  # memory and documents together
    SHORT_TERM_CONTEXT = "short_term_context"
    MEMORY_STORAGE = "memory_storage"
    MEMORY_ENQUEUE = "memory_enqueue"  # queueing the turn as memory (traced)


# The timed stages, in the order a turn runs them.
TIMED_STAGES = (
    Stage.EMBEDDING,
    Stage.MEMORY_RETRIEVAL,
    Stage.RAG_RETRIEVAL,
    Stage.GENERATION,
    Stage.TOTAL_LATENCY,
)
