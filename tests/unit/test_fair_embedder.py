"""``FairEmbedder``: lanes served round-robin, slice by slice; a cancelled caller's work
stops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from application.fair_embedder import FairEmbedder
from tests.fakes.fake_embedder import FakeEmbedder


class TakesTurns(FakeEmbedder):
    """A fake whose calls take a moment (the event loop runs others meanwhile)."""

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        await asyncio.sleep(0.001)
        return await super().embed_documents(texts)


async def test_a_small_request_waits_one_slice_per_busy_lane_not_for_the_bulk() -> None:
    embedder = TakesTurns()
    fair = FairEmbedder(embedder, slice_size=4)
    bulk = asyncio.create_task(fair.embed("bulk", [f"bulk {i}" for i in range(40)]))
    other_bulk = asyncio.create_task(fair.embed("bulk", [f"more {i}" for i in range(40)]))
    await asyncio.sleep(0)  # both are running or waiting
    small = await fair.embed("small", ["small one"])
    position = embedder.calls.index(["small one"])
    assert position <= 2  # the slice running, then the small lane's turn
    assert not bulk.done()
    assert not other_bulk.done()
    vectors = await bulk
    assert vectors == [embedder.vector(f"bulk {i}") for i in range(40)]
    assert small == [embedder.vector("small one")]
    await other_bulk


async def test_lanes_alternate() -> None:
    embedder = TakesTurns()
    fair = FairEmbedder(embedder, slice_size=1)
    await asyncio.gather(fair.embed("a", ["a1", "a2", "a3"]), fair.embed("b", ["b1", "b2"]))
    assert [call[0] for call in embedder.calls] == ["a1", "b1", "a2", "b2", "a3"]


async def test_a_cancelled_caller_stops_and_gives_up_its_place() -> None:
    embedder = TakesTurns()
    fair = FairEmbedder(embedder, slice_size=2)
    bulk = asyncio.create_task(fair.embed("bulk", [f"t{i}" for i in range(100)]))
    queued = asyncio.create_task(fair.embed("bulk", [f"q{i}" for i in range(100)]))
    await asyncio.sleep(0.01)
    bulk.cancel()
    queued.cancel()  # waiting for its turn
    for task in (bulk, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    made = len(embedder.calls)
    assert made < 50
    assert await fair.embed("later", ["y"]) == [embedder.vector("y")]  # slot given back
    assert len(embedder.calls) == made + 1


async def test_a_failure_reaches_its_caller_and_frees_the_slot() -> None:
    embedder = TakesTurns()
    fair = FairEmbedder(embedder)
    embedder.failure = RuntimeError("down")
    with pytest.raises(RuntimeError):
        await fair.embed("a", ["x"])
    embedder.failure = None
    assert await fair.embed("a", ["x"]) == [embedder.vector("x")]
