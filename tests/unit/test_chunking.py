"""Chunking: paragraphs and headings first, every chunk within the token limit, overlap
between chunks of the same section, stable ids."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest

from domain.chunking import chunk_document, chunk_text, on_pages
from domain.documents import Document, chunk_id_for


def words(text: str) -> int:
    return len(text.split())


def quarter_chars(text: str) -> int:
    """A counter where one long word is many tokens (as WordPiece makes of a hash)."""
    return math.ceil(len(text) / 4)


SENTENCES = [f"Sentence {n} says something about topic {n % 7}." for n in range(80)]
MANUAL = "\n".join(
    [
        "# Espresso machine manual",
        "",
        "Read this manual before the first use. Keep it near the machine.",
        "",
        "## Descaling",
        " ".join(SENTENCES[:40]),
        "",
        "Descale with citric acid only.",
        "",
        "## Cleaning",
        "",
        "```sh",
        "# rinse the group head",
        "",
        "run-rinse --cycles 3",
        "```",
        "",
        *(f"Step {n}: " + "wipe the steam wand " * 6 for n in range(8)),
        "",
        "### Warranty",
        "## Contacts",
        "Write to the service desk. " + " ".join(SENTENCES[40:]),
    ]
)
DOC = "doc_0123456789abcdef01234567"


def chunk(text: str = MANUAL, **limits: int) -> list[str]:
    return [c.text for c in chunk_text(DOC, text, words, **limits)]


def test_empty_or_blank_text_has_no_chunks() -> None:
    for text in ("", "   ", "\n\n \t\n"):
        assert chunk_text(DOC, text, words) == []


def test_a_short_text_is_one_chunk_with_the_stable_id() -> None:
    [only] = chunk_text(DOC, "  A short note.\n", words)

    assert only.text == "A short note."
    assert (only.id, only.document_id, only.index) == (chunk_id_for(DOC, 0), DOC, 0)


def test_chunking_again_gives_the_same_chunks_and_ids() -> None:
    first = chunk_text(DOC, MANUAL, words, max_tokens=50, overlap_tokens=10)
    again = chunk_text(DOC, MANUAL, words, max_tokens=50, overlap_tokens=10)

    assert first == again
    assert [c.id for c in first] == [chunk_id_for(DOC, i) for i in range(len(first))]
    assert [c.index for c in first] == list(range(len(first)))
    assert len({c.id for c in first}) == len(first)


@pytest.mark.parametrize("counter", [words, quarter_chars], ids=["words", "quarter-chars"])
@pytest.mark.parametrize(("max_tokens", "overlap"), [(200, 30), (50, 10), (12, 3), (8, 0)])
def test_every_chunk_fits_and_none_is_empty(
    counter: Callable[[str], int], max_tokens: int, overlap: int
) -> None:
    text = MANUAL + "\n\nchecksum " + "f00d" * 60  # one word far over any limit
    chunks = chunk_text(DOC, text, counter, max_tokens=max_tokens, overlap_tokens=overlap)

    assert len(chunks) > 1
    assert all(c.text.strip() == c.text and c.text for c in chunks)
    assert max(counter(c.text) for c in chunks) <= max_tokens


def test_nothing_is_lost() -> None:
    text = " ".join(chunk(max_tokens=40, overlap_tokens=8))

    for sentence in SENTENCES:
        assert sentence in text
    pieces = chunk_text(DOC, "f00d" * 60, quarter_chars, max_tokens=5, overlap_tokens=0)
    assert len(pieces) > 1
    assert "".join(p.text for p in pieces) == "f00d" * 60


def test_a_long_paragraph_is_cut_between_sentences() -> None:
    paragraph = " ".join(SENTENCES)
    chunks = chunk(paragraph, max_tokens=40, overlap_tokens=8)

    assert len(chunks) > 3
    assert all(c.endswith(".") for c in chunks)
    # Sentences are never cut: each is whole in some chunk.
    assert all(any(s in c for c in chunks) for s in SENTENCES)


def test_consecutive_chunks_of_a_section_overlap() -> None:
    paragraph = " ".join(SENTENCES)
    chunks = chunk(paragraph, max_tokens=40, overlap_tokens=8)

    for before, after in itertools.pairwise(chunks):
        # The next chunk opens with the previous one's last sentence (8 words, within
        # the overlap), then goes on with new text.
        head = after.split(". ")[0] + "."
        assert before.endswith(head)
        assert 0 < words(head) <= 8
        assert words(after) > words(head)


def test_overlap_zero_means_disjoint_chunks() -> None:
    chunks = chunk(" ".join(SENTENCES), max_tokens=40, overlap_tokens=0)

    assert " ".join(chunks) == " ".join(SENTENCES)


def test_a_heading_opens_a_chunk_with_the_text_under_it() -> None:
    chunks = chunk(max_tokens=60, overlap_tokens=10)

    for text in chunks:
        lines = [line for line in text.splitlines() if line.strip()]
        # A heading never ends a chunk (the last heading of the manual has text).
        assert not lines[-1].startswith("#")
    descaling = next(c for c in chunks if "## Descaling" in c)
    assert descaling.split("## Descaling")[1].strip().startswith("Sentence 0 says")
    # Consecutive headings stay together, with the text under the last one.
    assert any("### Warranty\n\n## Contacts\n\nWrite to the service desk." in c for c in chunks)


def test_a_chunk_opened_by_a_heading_carries_no_overlap() -> None:
    text = " ".join(SENTENCES[:5]) + "\n\n## Next\n\n" + " ".join(SENTENCES[5:10])
    first, second = chunk(text, max_tokens=60, overlap_tokens=10)

    assert first == " ".join(SENTENCES[:5])
    assert second == "## Next\n\n" + " ".join(SENTENCES[5:10])


def test_a_code_block_comment_is_not_a_heading() -> None:
    chunks = chunk(max_tokens=200, overlap_tokens=30)

    cleaning = next(c for c in chunks if "# rinse the group head" in c)
    assert "```sh\n# rinse the group head\n\nrun-rinse --cycles 3\n```" in cleaning


def test_paragraphs_are_packed_up_to_the_limit() -> None:
    paragraphs = [f"Paragraph {n} is short." for n in range(10)]
    [only] = chunk("\n\n".join(paragraphs), max_tokens=200)

    assert only == "\n\n".join(paragraphs)


def test_chunk_document_uses_the_documents_id_and_text() -> None:
    document = Document(id=DOC, tenant="acme", source="manual.md", text=MANUAL)

    assert chunk_document(document, words) == chunk_text(DOC, MANUAL, words)


def test_overlap_must_be_smaller_than_the_limit() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_text(DOC, MANUAL, words, max_tokens=10, overlap_tokens=10)


def test_each_chunk_knows_its_span_and_heading_path() -> None:
    chunks = chunk_text(DOC, MANUAL, words, max_tokens=60, overlap_tokens=10)
    for c in chunks:
        assert 0 <= c.start < c.end <= len(MANUAL)
        # The chunk's own text (past its overlap) is cut from its span.
        assert c.text.split()[-1] in MANUAL[c.start : c.end]
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    paths = {c.heading_path for c in chunks}
    assert ("Espresso machine manual", "Descaling") in paths
    assert ("Espresso machine manual", "Contacts") in paths
    assert all(p[0] == "Espresso machine manual" for p in paths)


TABLE_DOC = "\n".join(
    [
        "# Prices",
        "",
        " ".join(SENTENCES[:30]),
        "",
        "## Drinks",
        "",
        "| Item | Price | Note |",
        "|---|---|---|",
        *(f"| item {n} | {n} euro | fine |" for n in range(8)),
        "",
        " ".join(SENTENCES[30:60]),
    ]
)


def test_a_table_is_kept_whole_with_its_heading() -> None:
    chunks = chunk_text(DOC, TABLE_DOC, words, max_tokens=100, overlap_tokens=20)
    [holder] = [c for c in chunks if "| item 0 |" in c.text]
    assert all(f"| item {n} |" in holder.text for n in range(8))
    assert "## Drinks\n\n| Item | Price | Note |" in holder.text
    assert holder.heading_path == ("Prices", "Drinks")


def test_a_table_larger_than_a_chunk_is_cut_between_rows_repeating_its_header() -> None:
    chunks = chunk_text(DOC, TABLE_DOC, words, max_tokens=30, overlap_tokens=5)
    holders = [c for c in chunks if "| item " in c.text]
    assert len(holders) > 1
    for c in holders:
        rows = [line for line in c.text.split("\n") if line.startswith("| item")]
        assert rows
        assert "| Item | Price | Note |\n|---|---|---|" in c.text
        assert all(words(c.text) <= 30 for c in chunks)
    assert sum(c.text.count("| item ") for c in holders) == 8


def test_pages_come_from_where_each_page_starts() -> None:
    text = "First page text.\n\nSecond page text.\n\nThird page text."
    starts = (0, text.index("Second"), text.index("Third"))
    chunks = on_pages(chunk_text(DOC, text, words, max_tokens=4, overlap_tokens=0), starts)
    assert [(c.text, c.page) for c in chunks] == [
        ("First page text.", 1),
        ("Second page text.", 2),
        ("Third page text.", 3),
    ]
