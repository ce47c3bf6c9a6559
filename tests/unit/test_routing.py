"""RoutingTable: defaults and aliases over the models that are routed."""

from __future__ import annotations

import pytest

from domain.chat import SEED_DEFAULT_MODEL
from domain.errors import ModelNotFound
from domain.routing import RoutingTable

ROUTED = ["m-first", "m-second", "m-default"]


def test_a_routed_name_wins_over_an_alias_of_the_same_name() -> None:
    table = RoutingTable(aliases={"m-first": "m-second"})

    assert table.resolve("m-first", ROUTED) == "m-first"


def test_an_alias_renames_the_requested_model() -> None:
    table = RoutingTable(aliases={"gpt-4o": "m-second"})

    assert table.resolve("gpt-4o", ROUTED) == "m-second"


@pytest.mark.parametrize("requested", [None, ""])
def test_no_model_goes_to_the_default(requested: str | None) -> None:
    table = RoutingTable(default_model="m-default")

    assert table.resolve(requested, ROUTED) == "m-default"


def test_without_a_default_the_first_routed_model_serves() -> None:
    assert RoutingTable().resolve(None, ROUTED) == "m-first"


def test_seed_model_aliased_to_none_goes_to_the_default() -> None:
    table = RoutingTable(default_model="m-default", aliases={SEED_DEFAULT_MODEL: None})

    assert table.resolve(SEED_DEFAULT_MODEL, ROUTED) == "m-default"


def test_seed_model_served_for_real_is_not_rerouted() -> None:
    table = RoutingTable(default_model="m-default", aliases={SEED_DEFAULT_MODEL: None})

    assert table.resolve(SEED_DEFAULT_MODEL, [*ROUTED, SEED_DEFAULT_MODEL]) == SEED_DEFAULT_MODEL


def test_an_unknown_model_is_not_found_on_param_model() -> None:
    with pytest.raises(ModelNotFound) as raised:
        RoutingTable(default_model="m-default").resolve("nope", ROUTED)

    assert raised.value.param == "model"
    assert raised.value.model == "nope"
    assert "nope" in raised.value.message


def test_an_alias_to_a_model_not_routed_is_not_found() -> None:
    table = RoutingTable(aliases={"gpt-4o": "m-gone"})

    with pytest.raises(ModelNotFound):
        table.resolve("gpt-4o", ROUTED)


def test_a_default_that_is_not_routed_is_not_found() -> None:
    with pytest.raises(ModelNotFound, match="m-gone"):
        RoutingTable(default_model="m-gone").resolve(None, ROUTED)


def test_nothing_routed_means_even_the_default_request_is_not_found() -> None:
    with pytest.raises(ModelNotFound):
        RoutingTable().resolve(None, [])
