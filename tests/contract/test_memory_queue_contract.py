"""The MemoryQueue contract, run on every adapter (fake, in process, a Redis stream on a
real private redis-server); then what only one adapter promises: the in-process bound,
and Redis's durability across a crash and its faults: the background writer resumes by
itself when a stopped Redis comes back on the same port, empty or with its data, and no
turn whose ``put`` succeeded is lost."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

from adapters.memory.in_process_queue import InProcessMemoryQueue
from adapters.memory.redis_retry import RetryPolicy
from adapters.memory.redis_stream_queue import RedisStreamMemoryQueue
from application.memories import MemoryWriter
from domain.errors import MemoryUnavailable
from domain.health import Status
from domain.memory import Memory, MemoryTurn, new_memory_id
from tests.conftest import free_port
from tests.fakes.fake_embedder import FakeEmbedder
from tests.fakes.fake_memory_store import FakeMemoryStore

if TYPE_CHECKING:
    from tests.contract.memory_fixtures import QueueUnderTest, RedisServer

pytest_plugins = ["tests.contract.memory_fixtures"]

NOW = 1_700_000_000.0
# The writer's retries, shortened: a test of a stopped Redis should not wait seconds.
QUICK = RetryPolicy(
    attempts=5, first_wait_s=0.01, max_wait_s=0.05, deadline_s=0.2,
    retry_timeouts=True, retry_while_down=True,
)  # fmt: skip


def turn(text: str = "User: hi\nAssistant: hello", user_id: str = "alice") -> MemoryTurn:
    return MemoryTurn(new_memory_id(), "acme", user_id, text, NOW)


async def test_turns_come_out_in_order_and_leave_when_acknowledged(
    memory_queue: QueueUnderTest,
) -> None:
    queue = memory_queue.queue
    turns = [turn(f"User: question {n}\nAssistant: answer {n}") for n in range(3)]
    for t in turns:
        await queue.put(t)
    assert await queue.depth() == 3
    first = await queue.take(2, 0.5)
    assert [t for _, t in first] == turns[:2]
    assert await queue.depth() == 3, "taken but not acknowledged still counts"
    second = await queue.take(10, 0.5)
    assert [t for _, t in second] == turns[2:]
    await queue.ack([receipt for receipt, _ in first])
    assert await queue.depth() == 1
    await queue.ack([receipt for receipt, _ in second])
    await queue.ack([])
    assert await queue.depth() == 0
    assert await queue.take(5, 0.05) == []


async def test_take_returns_nothing_after_waiting_on_an_empty_queue(
    memory_queue: QueueUnderTest,
) -> None:
    assert await memory_queue.queue.take(3, 0.05) == []
    assert await memory_queue.queue.take(3, 0) == []


async def test_a_waiting_take_receives_a_turn_put_meanwhile(memory_queue: QueueUnderTest) -> None:
    queue = memory_queue.queue
    waiting = asyncio.create_task(queue.take(5, 2.0))
    await asyncio.sleep(0.05)
    t = turn()
    await queue.put(t)
    # Had the take not woken up, it would return [] at its deadline.
    assert [x for _, x in await waiting] == [t]


async def test_take_respects_max_items(memory_queue: QueueUnderTest) -> None:
    queue = memory_queue.queue
    for n in range(5):
        await queue.put(turn(f"turn {n}"))
    assert len(await queue.take(1, 0.5)) == 1
    assert len(await queue.take(3, 0.5)) == 3
    assert len(await queue.take(3, 0.5)) == 1


async def test_retry_puts_the_turn_back_with_one_more_attempt(
    memory_queue: QueueUnderTest,
) -> None:
    queue = memory_queue.queue
    original = turn()
    await queue.put(original)
    [(receipt, taken)] = await queue.take(1, 0.5)
    await queue.retry(receipt, taken)
    assert await queue.depth() == 1
    [(receipt, again)] = await queue.take(1, 0.5)
    assert again == replace(original, attempts=1)
    await queue.retry(receipt, again)
    [(receipt, third)] = await queue.take(1, 0.5)
    assert third.attempts == 2
    await queue.ack([receipt])
    assert await queue.depth() == 0


async def test_a_turn_comes_back_exactly_as_it_was_put(memory_queue: QueueUnderTest) -> None:
    odd = MemoryTurn(
        memory_id=new_memory_id(),
        tenant="globex",
        user_id='{"$ne": 1} *',
        text="User: Ça va? 東京 🚄\nAssistant: " + "x" * 20_000 + "\x00",
        created_at=1_700_000_123.456789,
        attempts=3,
    )
    await memory_queue.queue.put(odd)
    [(_, out)] = await memory_queue.queue.take(1, 0.5)
    assert out == odd


async def test_a_taken_turn_is_not_lost_until_acknowledged(memory_queue: QueueUnderTest) -> None:
    """The writer took it and failed without a word (no ack, no retry): still counted,
    so a flush waits for it; and ``retry`` with that receipt brings it back."""
    queue = memory_queue.queue
    t = turn()
    await queue.put(t)
    [(receipt, _)] = await queue.take(1, 0.5)
    assert await queue.depth() == 1
    await queue.retry(receipt, t)
    [(_, back)] = await queue.take(1, 0.5)
    assert back.memory_id == t.memory_id


# --- in process ---------------------------------------------------------------------------


async def test_the_in_process_queue_is_bounded() -> None:
    queue = InProcessMemoryQueue(maxsize=2)
    await queue.put(turn())
    await queue.put(turn())
    with pytest.raises(MemoryUnavailable):
        await queue.put(turn())
    [(receipt, taken)] = await queue.take(1, 0)
    with pytest.raises(MemoryUnavailable):
        await queue.put(turn())  # a turn in flight still takes its place
    await queue.retry(receipt, taken)  # never refused: the turn was already counted
    assert await queue.depth() == 2
    receipts = [r for r, _ in await queue.take(2, 0)]
    await queue.ack(receipts)
    await queue.put(turn())
    assert await queue.depth() == 1


# --- Redis --------------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_crashed_consumers_turns_are_reclaimed(redis_memory_queue: QueueUnderTest) -> None:
    """The gateway took turns and died before storing them: the next one (a new queue
    object on the same stream, another consumer) gets them once they have been idle."""
    crashed = redis_memory_queue.queue
    turns = [turn(f"turn {n}") for n in range(3)]
    for t in turns:
        await crashed.put(t)
    taken = await crashed.take(2, 0.5)
    assert len(taken) == 2
    assert redis_memory_queue.reopen is not None
    restarted = redis_memory_queue.reopen(0.05)
    await asyncio.sleep(0.1)
    assert await restarted.depth() == 3
    reclaimed = await restarted.take(10, 0.5)
    assert [t for _, t in reclaimed] == turns[:2]
    rest = await restarted.take(10, 0.5)
    assert [t for _, t in rest] == turns[2:]
    await restarted.ack([r for r, _ in reclaimed + rest])
    assert await restarted.depth() == 0
    await crashed.ack([r for r, _ in taken])  # the dead one's late ack is harmless
    assert await restarted.take(10, 0.05) == []


@pytest.mark.redis
async def test_an_entry_that_is_not_a_turn_goes_to_the_dead_letters(
    redis_memory_queue: QueueUnderTest, redis_client: Redis
) -> None:
    queue = redis_memory_queue.queue
    assert isinstance(queue, RedisStreamMemoryQueue)
    good = turn()
    await queue.put(good)
    await redis_client.xadd(queue.stream, {"turn": b"\xff not json"})
    taken = await queue.take(10, 0.5)
    assert [t for _, t in taken] == [good]
    assert await redis_client.xlen(f"{queue.stream}:dead") == 1
    await queue.ack([r for r, _ in taken])
    assert await queue.depth() == 0


@pytest.mark.redis
async def test_a_closed_port_is_memory_unavailable() -> None:
    client = Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    queue = RedisStreamMemoryQueue(client, stream="test:memory:nowhere", background=QUICK)
    try:
        for call in (
            queue.put(turn()),
            queue.take(1, 0.05),
            queue.ack(["1-0"]),
            queue.retry("1-0", turn()),
            queue.depth(),
        ):
            with pytest.raises(MemoryUnavailable):
                await call
        assert (await queue.check()).status is Status.UNHEALTHY
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_down_then_back(private_redis_server: RedisServer) -> None:
    """Killed: every call is MemoryUnavailable (the writer backs off, the request path
    reports it); restarted empty (no persistence): the queue recreates its group."""
    client = private_redis_server.client()
    queue = RedisStreamMemoryQueue(client, stream="test:memory:restart", background=QUICK)
    try:
        await queue.put(turn())
        assert len(await queue.take(1, 0.5)) == 1
        private_redis_server.kill()
        with pytest.raises(MemoryUnavailable):
            await queue.put(turn())
        with pytest.raises(MemoryUnavailable):
            await queue.take(1, 0.05)
        down = await queue.check()
        assert down.status is Status.UNHEALTHY
        assert down.detail is not None
        assert down.detail.startswith("unreachable since ")
        assert "ConnectionError" in down.detail
        private_redis_server.start()
        assert (await queue.check()).status is Status.HEALTHY
        t = turn()
        await queue.put(t)
        [(receipt, back)] = await queue.take(1, 0.5)
        assert back == t
        await queue.ack([receipt])
        assert await queue.depth() == 0
    finally:
        await client.aclose()


# --- the writer over a Redis that stops and comes back ---------------------------------


class GatedMemoryStore(FakeMemoryStore):
    """Holds each ``add`` while ``gate`` is closed (``holding`` counts them): the writer
    then has turns in hand, taken but not stored or acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.holding = 0

    async def add(self, memory: Memory, vector: list[float]) -> None:
        self.holding += 1
        try:
            await self.gate.wait()
        finally:
            self.holding -= 1
        await super().add(memory, vector)


async def until(condition: Callable[[], object], within_s: float = 15.0) -> None:
    """Polls ``condition`` (a coroutine function too) until it holds."""
    async with asyncio.timeout(within_s):
        while True:
            held = condition()
            if inspect.isawaitable(held):
                held = await held
            if held:
                return
            await asyncio.sleep(0.02)


def emptied(queue: RedisStreamMemoryQueue) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        return await queue.depth() == 0

    return empty


def stored(store: FakeMemoryStore) -> set[str]:
    return {memory_id for _, _, memory_id in store.memories}


@contextlib.asynccontextmanager
async def writing(
    store: FakeMemoryStore, server: RedisServer
) -> AsyncIterator[RedisStreamMemoryQueue]:
    """A queue on ``server`` (claiming idle entries after the default minute) drained by
    a running ``MemoryWriter`` into ``store``, as the gateway runs them."""
    client = server.client()
    queue = RedisStreamMemoryQueue(client, stream="test:memory:writer", background=QUICK)
    writer = MemoryWriter(store, queue, FakeEmbedder(64), batch=8, wait_s=0.1, backoff_s=0.05)
    running = asyncio.create_task(writer.run())
    try:
        yield queue
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await client.aclose()


async def put_all(queue: RedisStreamMemoryQueue, label: str, count: int) -> list[MemoryTurn]:
    """Every turn that ``put`` accepted: the gateway told its client it is stored."""
    turns = [turn(f"User: {label} {n}") for n in range(count)]
    for t in turns:
        await queue.put(t)
    return turns


@pytest.mark.redis
async def test_the_writer_resumes_by_itself_when_redis_restarts_empty(
    private_redis_server: RedisServer,
) -> None:
    store = FakeMemoryStore()
    async with writing(store, private_redis_server) as queue:
        accepted = await put_all(queue, "before", 3)
        await until(lambda: stored(store) >= {t.memory_id for t in accepted})
        private_redis_server.kill()  # no persistence: it comes back empty, group and all
        with pytest.raises(MemoryUnavailable):
            await queue.put(turn("User: while down"))  # refused: never acknowledged
        await asyncio.sleep(0.5)  # the writer fails and backs off meanwhile
        private_redis_server.start()
        accepted += await put_all(queue, "after", 3)
        await until(lambda: stored(store) >= {t.memory_id for t in accepted})
        await until(emptied(queue))
        assert (await queue.check()).status is Status.HEALTHY


@pytest.mark.redis
async def test_turns_in_hand_when_redis_stops_are_stored_once_it_is_back(
    private_redis_server: RedisServer,
) -> None:
    """Redis stops (saving its data) while the writer holds taken turns, and storing them
    fails meanwhile, so they can be neither acknowledged nor put back. Back on the same
    port with the stream and the group, the writer takes them again at once (not after
    ``claim_idle_s``, a minute) and stores them."""
    store = GatedMemoryStore()
    store.gate.clear()
    async with writing(store, private_redis_server) as queue:
        accepted = await put_all(queue, "in hand", 3)
        await until(lambda: store.holding)
        no_retry = SyncRetry(NoBackoff(), 0)  # SHUTDOWN's answer is a closed connection
        with SyncRedis(port=private_redis_server.port, socket_timeout=5, retry=no_retry) as admin:
            admin.shutdown(save=True)
        private_redis_server.kill()  # reaps the process
        store.down = True
        store.gate.set()  # the add fails, and so does putting the turn back
        await until(lambda: store.add_calls >= 1)
        await asyncio.sleep(0.3)
        store.down = False
        private_redis_server.start()
        accepted += await put_all(queue, "after", 2)
        await until(lambda: stored(store) >= {t.memory_id for t in accepted}, within_s=20)
        await until(emptied(queue))
    assert stored(store) == {t.memory_id for t in accepted}
