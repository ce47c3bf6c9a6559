"""Chunking: a document's text cut into overlapping chunks that each fit the embedder.

Sizes are in tokens as the embedder counts them (``count_tokens``). The text is cut where
a reader would cut it: at markdown headings and paragraphs first, then lines, sentences,
words and, for a monster word, characters. Paragraphs are packed together up to
``max_tokens``; a chunk that continues the text of the one before it starts with that
chunk's last ``overlap_tokens`` (or fewer) words, so a sentence cut at a boundary is
whole in one of the two. A heading always opens a chunk's text with what follows it (it
never ends a chunk on its own), and a chunk that opens with a heading carries no overlap:
it starts a new section. Chunking is a pure function: the same text always gives the
same chunks, with the same ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from domain.documents import Chunk, Document, chunk_id_for

MAX_TOKENS = 200
OVERLAP_TOKENS = 30

_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s|$)")
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
PARAGRAPH, LINE, SPACE, NOTHING = "\n\n", "\n", " ", ""

TokenCounter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    separator: str  # what joins it to the text before it
    heading: bool = False


def chunk_document(
    document: Document,
    count_tokens: TokenCounter,
    *,
    max_tokens: int = MAX_TOKENS,
    overlap_tokens: int = OVERLAP_TOKENS,
) -> list[Chunk]:
    return chunk_text(document.id, document.text, count_tokens, max_tokens, overlap_tokens)


def chunk_text(
    document_id: str,
    text: str,
    count_tokens: TokenCounter,
    max_tokens: int = MAX_TOKENS,
    overlap_tokens: int = OVERLAP_TOKENS,
) -> list[Chunk]:
    """The chunks of ``text``, none empty, each of at most ``max_tokens`` (a single
    character that counts more is the one exception)."""
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(
            f"need 0 ≤ overlap_tokens < max_tokens, got {overlap_tokens}, {max_tokens}"
        )
    # Pieces leave room for the overlap, so it always fits before any of them.
    limit = max_tokens - overlap_tokens
    pieces = [p for block in _blocks(text) for p in _fitted(block, limit, count_tokens)]
    texts: list[str] = []
    current = ""
    for group in _groups(pieces, max_tokens, count_tokens):
        candidate = _join(current, group)
        if current and count_tokens(candidate) <= max_tokens:
            current = candidate
            continue
        if current:
            texts.append(current)
        current = _join("", group)
        if texts and not group[0].heading:
            separator = group[0].separator
            tail = _overlap(texts[-1], current, separator, overlap_tokens, max_tokens, count_tokens)
            current = f"{tail}{separator}{current}" if tail else current
    if current:
        texts.append(current)
    return [Chunk(chunk_id_for(document_id, i), document_id, i, t) for i, t in enumerate(texts)]


def _blocks(text: str) -> Iterator[_Piece]:
    """Headings and paragraphs (a fenced code block is one paragraph, its ``#`` lines
    are not headings)."""
    lines: list[str] = []
    fenced = False
    for raw in [*text.splitlines(), ""]:
        line = raw.rstrip()
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (not line.strip() or _HEADING.match(line)):
            if lines:
                yield _Piece(LINE.join(lines).strip(), PARAGRAPH)
                lines = []
            if line.strip():
                yield _Piece(line.strip(), PARAGRAPH, heading=True)
            continue
        lines.append(line)
    if lines:  # an unclosed fence runs to the end
        yield _Piece(LINE.join(lines).strip(), PARAGRAPH)


def _fitted(piece: _Piece, limit: int, count: TokenCounter) -> list[_Piece]:
    """``piece`` cut until every part counts at most ``limit``; the first part keeps the
    piece's separator."""
    if count(piece.text) <= limit or len(piece.text) <= 1:
        return [piece]
    parts, separator = _cut(piece.text)
    cut = [_Piece(part, separator if i else piece.separator) for i, part in enumerate(parts)]
    return [fitted for part in cut for fitted in _fitted(part, limit, count)]


def _cut(text: str) -> tuple[list[str], str]:
    """At lines, else sentences, else words, else in the middle."""
    lines = [line.strip() for line in text.split(LINE) if line.strip()]
    if len(lines) > 1:
        return lines, LINE
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    if len(sentences) > 1:
        return sentences, SPACE
    words = text.split()
    if len(words) > 1:
        return words, SPACE
    half = len(text) // 2
    return [text[:half], text[half:]], NOTHING


def _groups(pieces: list[_Piece], max_tokens: int, count: TokenCounter) -> Iterator[list[_Piece]]:
    """Pieces as they must be packed: headings with the first piece that follows them
    (unless the lot would not fit in a chunk at all)."""
    pending: list[_Piece] = []
    for piece in pieces:
        pending.append(piece)
        if piece.heading:
            continue
        if len(pending) == 1 or count(_join("", pending)) <= max_tokens:
            yield pending
        else:
            yield from ([p] for p in pending)
        pending = []
    if pending:  # headings with nothing after them: together
        yield pending


def _join(text: str, group: list[_Piece]) -> str:
    for piece in group:
        text = f"{text}{piece.separator}{piece.text}" if text else piece.text
    return text


def _overlap(
    previous: str, text: str, separator: str, overlap: int, max_tokens: int, count: TokenCounter
) -> str:
    """The longest tail of ``previous`` (whole words) that counts at most ``overlap``
    tokens and still lets ``text`` fit after it."""
    words = previous.split()
    taken = 0
    while taken < len(words) and count(" ".join(words[-(taken + 1) :])) <= overlap:
        taken += 1
    while taken and count(f"{' '.join(words[-taken:])}{separator}{text}") > max_tokens:
        taken -= 1
    tail = words[len(words) - taken :]
    # From the first sentence start in the tail, unless that drops most of it.
    starts = [i + 1 for i, w in enumerate(tail[:-1]) if w.endswith((".", "!", "?", "…"))]
    if starts and starts[0] <= len(tail) // 2:
        tail = tail[starts[0] :]
    return " ".join(tail)
