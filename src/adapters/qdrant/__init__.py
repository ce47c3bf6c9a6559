"""Qdrant, written once: the engine-neutral part (``engine``: vector names, fusion, BM25
terms, the driver protocol a store is written against) and one driver per engine
(``edge``: an embedded Qdrant Edge shard; ``server``: a Qdrant server or cluster through
``qdrant_client``). The memory store and the document index are each written once over
a driver, so both backends hold and answer exactly the same thing by construction."""
