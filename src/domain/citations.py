"""The passages an answer cites: ``[n]`` (or ``[n, m]``) in its text, where the context
numbered the knowledge base's passages 1, 2, ... for the model. Only what the answer
says: a number no passage has is ignored, nothing is guessed for an answer that cites
nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from domain.documents import DocumentHit

_CITED = re.compile(r"\[\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\](?!\()")


@dataclass(frozen=True, slots=True)
class Citation:
    number: int  # as in the answer: the passage's 1-based place in the context
    passage: DocumentHit


def citations_in(answer: str | None, passages: Sequence[DocumentHit]) -> list[Citation]:
    """Each passage the answer cites, once, in the order of its first citation."""
    found: list[Citation] = []
    seen: set[int] = set()
    for group in _CITED.finditer(answer or ""):
        for number in map(int, re.split(r"[,;]", group.group(1))):
            if 1 <= number <= len(passages) and number not in seen:
                seen.add(number)
                found.append(Citation(number, passages[number - 1]))
    return found
