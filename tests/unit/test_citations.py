"""``[n]`` in an answer, mapped to the numbered passages the model was given."""

from __future__ import annotations

import pytest

from domain.citations import citations_in
from domain.documents import DocumentHit

PASSAGES = [DocumentHit(f"passage {n}", 0.5, {"chunk_id": f"c{n}"}) for n in (1, 2, 3)]


@pytest.mark.parametrize(
    ("answer", "numbers"),
    [
        ("Returns take 30 days [2].", [2]),
        ("See [3][1] and again [3].", [3, 1]),
        ("Both [1, 2]; also [2; 3].", [1, 2, 3]),
        ("A [ 2 ] with spaces.", [2]),
        ("No passage [4], none [0].", []),
        ("A link [1](http://example.com) is no citation.", []),
        ("Nothing cited.", []),
        ("", []),
        (None, []),
    ],
)
def test_the_cited_numbers_in_order_of_first_citation(
    answer: str | None, numbers: list[int]
) -> None:
    found = citations_in(answer, PASSAGES)
    assert [c.number for c in found] == numbers
    assert all(c.passage is PASSAGES[c.number - 1] for c in found)
