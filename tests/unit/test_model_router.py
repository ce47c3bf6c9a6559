"""ModelRouter: which upstream serves which model, discovered or mapped."""

from __future__ import annotations

import asyncio

import pytest

from application.model_router import ModelRouter
from domain.chat import ModelCard
from domain.errors import ModelNotFound, UpstreamUnavailable
from domain.routing import RoutingTable
from tests.fakes.fake_chat_model import CREATED, FakeChatModel
from tests.fakes.fake_clock import FakeClock

TTL = 60.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def first() -> FakeChatModel:
    return FakeChatModel("first", models=("m1", "shared"))


@pytest.fixture
def second() -> FakeChatModel:
    return FakeChatModel("second", models=("shared", "m2"))


@pytest.fixture
def router(first: FakeChatModel, second: FakeChatModel, clock: FakeClock) -> ModelRouter:
    return ModelRouter([first, second], RoutingTable(), clock, cache_ttl_s=TTL)


async def test_each_listed_model_routes_to_the_upstream_that_lists_it(
    router: ModelRouter, first: FakeChatModel, second: FakeChatModel
) -> None:
    assert await router.route("m1") == ("m1", [first])
    assert await router.route("m2") == ("m2", [second])


async def test_a_model_listed_twice_is_served_by_both_first_listed_first(
    router: ModelRouter, first: FakeChatModel, second: FakeChatModel
) -> None:
    assert await router.route("shared") == ("shared", [first, second])


async def test_least_outstanding_and_accepting_upstreams_come_first(
    router: ModelRouter, first: FakeChatModel, second: FakeChatModel
) -> None:
    first.in_flight = 3
    assert (await router.route("shared"))[1] == [second, first]
    second.accepting = False
    assert (await router.route("shared"))[1] == [first, second]


async def test_an_explicit_map_can_name_several_upstreams(
    first: FakeChatModel, second: FakeChatModel, clock: FakeClock
) -> None:
    router = ModelRouter(
        [first, second], RoutingTable(), clock, model_map={"m1": ["second", "first"]}
    )
    assert await router.route("m1") == ("m1", [second, first])


async def test_models_lists_each_model_once_with_its_owner(router: ModelRouter) -> None:
    assert await router.models() == [
        ModelCard("m1", "first", CREATED),
        ModelCard("shared", "first", CREATED),
        ModelCard("m2", "second", CREATED),
    ]


async def test_a_model_nobody_lists_is_not_found(router: ModelRouter) -> None:
    with pytest.raises(ModelNotFound):
        await router.route("m3")


async def test_lists_are_cached_until_the_ttl_then_refreshed(
    router: ModelRouter, second: FakeChatModel, clock: FakeClock
) -> None:
    await router.route("m1")
    second.models.append("m3")

    clock.advance(TTL - 0.1)
    await router.route("m1")
    with pytest.raises(ModelNotFound):
        await router.route("m3")
    assert second.list_models_calls == 1

    clock.advance(0.1)
    assert await router.route("m3") == ("m3", [second])
    assert second.list_models_calls == 2


async def test_concurrent_first_requests_list_the_models_once(
    router: ModelRouter, first: FakeChatModel
) -> None:
    await asyncio.gather(*(router.route("m1") for _ in range(5)))

    assert first.list_models_calls == 1


async def test_an_unreachable_upstream_keeps_its_last_known_models(
    router: ModelRouter, first: FakeChatModel, second: FakeChatModel, clock: FakeClock
) -> None:
    await router.route("m2")
    second.failure = UpstreamUnavailable("second is down")
    first.models.append("m-new")

    clock.advance(TTL)

    assert await router.route("m2") == ("m2", [second])
    assert await router.route("m-new") == ("m-new", [first])
    assert second.list_models_calls == 2


async def test_nobody_reachable_at_first_is_upstream_unavailable(
    router: ModelRouter, first: FakeChatModel, second: FakeChatModel
) -> None:
    first.failure = second.failure = UpstreamUnavailable("down")

    with pytest.raises(UpstreamUnavailable):
        await router.route("m1")
    with pytest.raises(UpstreamUnavailable):
        await router.models()


async def test_after_nobody_answered_the_lists_are_retried_well_before_the_ttl(
    router: ModelRouter, first: FakeChatModel, second: FakeChatModel, clock: FakeClock
) -> None:
    first.failure = second.failure = UpstreamUnavailable("down")
    with pytest.raises(UpstreamUnavailable):
        await router.route("m1")

    first.failure = second.failure = None
    clock.advance(1.0)

    assert await router.route("m1") == ("m1", [first])


async def test_an_error_that_is_not_an_upstream_error_is_not_swallowed(
    router: ModelRouter, first: FakeChatModel
) -> None:
    first.failure = RuntimeError("a bug in an adapter")

    with pytest.raises(RuntimeError, match="a bug in an adapter"):
        await router.route("m1")


async def test_an_explicit_model_map_routes_only_the_mapped_models(
    first: FakeChatModel, second: FakeChatModel, clock: FakeClock
) -> None:
    router = ModelRouter(
        [first, second], RoutingTable(), clock, model_map={"m2": ["second"], "shared": ["second"]}
    )

    assert await router.route("m2") == ("m2", [second])
    assert await router.route("shared") == ("shared", [second])
    with pytest.raises(ModelNotFound):
        await router.route("m1")
    assert [card.id for card in await router.models()] == ["m2", "shared"]


async def test_an_explicit_model_map_never_lists_the_upstreams(
    first: FakeChatModel, second: FakeChatModel, clock: FakeClock
) -> None:
    router = ModelRouter([first, second], RoutingTable(), clock, model_map={"m1": ["first"]})

    await router.route("m1")
    clock.advance(10 * TTL)
    await router.route("m1")

    assert first.list_models_calls == second.list_models_calls == 0


async def test_the_routing_table_applies_over_the_discovered_models(
    first: FakeChatModel, second: FakeChatModel, clock: FakeClock
) -> None:
    table = RoutingTable(default_model="m2", aliases={"gpt-4o": "m1"})
    router = ModelRouter([first, second], table, clock)

    assert await router.route(None) == ("m2", [second])
    assert await router.route("gpt-4o") == ("m1", [first])


async def test_a_reachable_upstream_takes_over_a_shared_model_from_a_dead_one() -> None:
    first = FakeChatModel(name="first", models=("shared",))
    second = FakeChatModel(name="second", models=("shared",))
    clock = FakeClock()
    router = ModelRouter([first, second], RoutingTable(), clock, cache_ttl_s=10)
    assert (await router.route("shared"))[1][0] is first

    first.failure = UpstreamUnavailable("down")
    clock.advance(11)

    assert (await router.route("shared"))[1][0] is second
