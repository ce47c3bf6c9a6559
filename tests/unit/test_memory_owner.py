"""The owner of memories: one user of one tenant, checked once where it is made."""

from __future__ import annotations

import pytest

from domain.errors import InvalidRequest
from domain.memory import MAX_USER_ID, Memory, MemoryOwner, MemoryTurn


@pytest.mark.parametrize("user_id", ["", "   ", "\n", "u" * (MAX_USER_ID + 1)])
def test_a_blank_or_overlong_user_id_is_refused_naming_the_field(user_id: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        MemoryOwner("acme", user_id)
    assert refused.value.param == "user_id"


@pytest.mark.parametrize("user_id", ["alice", "*", '{"$ne": 1}', "a:b", "u" * MAX_USER_ID])
def test_any_other_text_is_a_user_id_as_is(user_id: str) -> None:
    assert MemoryOwner("acme", user_id).user_id == user_id


def test_owners_are_equal_by_tenant_and_user() -> None:
    assert MemoryOwner("acme", "alice") == MemoryOwner("acme", "alice")
    assert MemoryOwner("acme", "alice") != MemoryOwner("globex", "alice")
    assert len({MemoryOwner("acme", "alice"), MemoryOwner("acme", "alice")}) == 1


def test_a_memory_and_a_queued_turn_name_their_owner() -> None:
    memory = Memory("mem-1", "acme", "alice", "likes tea", 0.0)
    turn = MemoryTurn("mem-2", "acme", "alice", "User: hi", 0.0)
    assert memory.owner == turn.owner == MemoryOwner("acme", "alice")
