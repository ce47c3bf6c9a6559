"""Chunking: a document's text cut into overlapping chunks that each fit the embedder.

Sizes are in tokens as the embedder counts them (``count_tokens``). The text is cut where
a reader would cut it: at markdown headings and paragraphs first, then lines, sentences,
words and, for a monster word, characters. Paragraphs are packed together up to
``max_tokens``; a chunk that continues the text of the one before it starts with that
chunk's last ``overlap_tokens`` (or fewer) words, so a sentence cut at a boundary is
whole in one of the two. A heading always opens a chunk's text with what follows it (it
never ends a chunk on its own), and a chunk that opens with a heading carries no overlap:
it starts a new section. Chunking is a pure function: the same text always gives the
same chunks, with the same ids.

Each chunk also says where it comes from: the span of the text it is cut from, and the
headings it sits under. A markdown table (lines starting with ``|``) is never cut while
it fits in a chunk, and a chunk holding one takes no overlap: the table stays whole with
its heading. A table too large for a chunk is cut between rows, each part repeating the
header row."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from domain.documents import Chunk, Document, chunk_id_for

MAX_TOKENS = 200
OVERLAP_TOKENS = 30

_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s|$)")
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
PARAGRAPH, LINE, SPACE, NOTHING = "\n\n", "\n", " ", ""

TokenCounter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class ChunkSize:
    """How chunks are cut, in the embedder's tokens."""

    max_tokens: int = MAX_TOKENS
    overlap_tokens: int = OVERLAP_TOKENS

    def problem(self) -> str | None:
        if self.max_tokens < 16:
            return f"chunk_size must be at least 16 tokens, got {self.max_tokens}"
        if not 0 <= self.overlap_tokens < self.max_tokens:
            return (
                f"chunk_overlap must be at least 0 and less than chunk_size "
                f"({self.max_tokens}), got {self.overlap_tokens}"
            )
        return None


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    separator: str  # what joins it to the text before it
    heading: bool = False
    start: int = 0  # its span in the document's text
    end: int = 0
    table: bool = False


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
    blocks = list(_blocks(text))
    pieces = [p for block in blocks for p in _fitted(block, limit, max_tokens, count_tokens, text)]
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    current, span = "", (0, 0)
    for group in _groups(pieces, max_tokens, count_tokens):
        candidate = _join(current, group)
        if current and count_tokens(candidate) <= max_tokens:
            current, span = candidate, (span[0], group[-1].end)
            continue
        if current:
            texts.append(current)
            spans.append(span)
        current, span = _join("", group), (group[0].start, group[-1].end)
        if texts and not group[0].heading and not any(p.table for p in group):
            separator = group[0].separator
            tail = _overlap(texts[-1], current, separator, overlap_tokens, max_tokens, count_tokens)
            current = f"{tail}{separator}{current}" if tail else current
    if current:
        texts.append(current)
        spans.append(span)
    headings = _heading_marks(blocks)
    return [
        Chunk(
            chunk_id_for(document_id, i),
            document_id,
            i,
            t,
            start=start,
            end=end,
            heading_path=_path_at(headings, max(start, end - 1)),
        )
        for i, (t, (start, end)) in enumerate(zip(texts, spans, strict=True))
    ]


def on_pages(chunks: Sequence[Chunk], page_starts: Sequence[int]) -> list[Chunk]:
    """The chunks with the page (1-based) each one's span starts on."""
    if not page_starts:
        return list(chunks)
    return [replace(c, page=max(1, bisect.bisect_right(page_starts, c.start))) for c in chunks]


def _heading_marks(blocks: list[_Piece]) -> list[tuple[int, int, str]]:
    """(offset, level, title) of every heading, in order."""
    marks = []
    for block in blocks:
        if block.heading:
            level = len(block.text) - len(block.text.lstrip("#"))
            marks.append((block.start, level, block.text.lstrip("#").strip()))
    return marks


def _path_at(marks: list[tuple[int, int, str]], offset: int) -> tuple[str, ...]:
    """The headings in force at ``offset``: each one's latest heading of a lower level."""
    path: list[tuple[int, str]] = []
    for start, level, title in marks:
        if start > offset:
            break
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
    return tuple(title for _, title in path)


def _blocks(text: str) -> Iterator[_Piece]:
    """Headings and paragraphs (a fenced code block is one paragraph, its ``#`` lines
    are not headings)."""
    lines: list[str] = []
    first = end = 0  # the span of ``lines`` in ``text``
    fenced = False
    offset = 0
    for raw in [*text.splitlines(keepends=True), ""]:
        at, offset = offset, offset + len(raw)
        line = raw.rstrip()
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (not line.strip() or _HEADING.match(line)):
            if lines:
                yield _paragraph(lines, first, end)
                lines = []
            if line.strip():
                lead = len(line) - len(line.lstrip())
                yield _Piece(line.strip(), PARAGRAPH, True, at + lead, at + len(line))
            continue
        if not lines:
            first = at + len(line) - len(line.lstrip())
        lines.append(line)
        end = at + len(line)
    if lines:  # an unclosed fence runs to the end
        yield _paragraph(lines, first, end)


def _paragraph(lines: list[str], start: int, end: int) -> _Piece:
    text = LINE.join(lines).strip()
    rows = text.split(LINE)
    table = (
        len(rows) >= 2
        and all(row.lstrip().startswith("|") for row in rows)
        and bool(_TABLE_RULE.match(rows[1].strip()))
    )
    return _Piece(text, PARAGRAPH, False, start, end, table)


def _fitted(
    piece: _Piece, limit: int, max_tokens: int, count: TokenCounter, text: str
) -> list[_Piece]:
    """``piece`` cut until every part counts at most ``limit`` (a table: ``max_tokens``,
    it takes no overlap); the first part keeps the piece's separator. Each part keeps
    its span in ``text``."""
    if count(piece.text) <= (max_tokens if piece.table else limit) or len(piece.text) <= 1:
        return [piece]
    if piece.table:
        return _table_parts(piece, max_tokens, count, text)
    parts, separator = _cut(piece.text)
    cut = []
    cursor = piece.start
    for i, part in enumerate(parts):
        found = text.find(part, cursor, piece.end)
        start = found if found >= 0 else cursor
        end = start + len(part) if found >= 0 else min(piece.end, cursor + len(part))
        cut.append(_Piece(part, separator if i else piece.separator, False, start, end))
        cursor = end
    return [fitted for part in cut for fitted in _fitted(part, limit, max_tokens, count, text)]


def _table_parts(piece: _Piece, max_tokens: int, count: TokenCounter, text: str) -> list[_Piece]:
    """A table too large for a chunk, cut between rows; each part opens with the header
    row and its rule. A single row too large is cut as any text would be."""
    header, rule, *rows = piece.text.split(LINE)
    parts: list[_Piece] = []
    body: list[str] = []
    cursor = piece.start

    def flush() -> None:
        nonlocal cursor
        first = text.find(body[0], cursor, piece.end)
        last = text.find(body[-1], max(first, cursor), piece.end)
        start = first if first >= 0 else cursor
        end = last + len(body[-1]) if last >= 0 else piece.end
        table = LINE.join([header, rule, *body])
        parts.append(_Piece(table, piece.separator if not parts else PARAGRAPH, False, start,
                            end, table=True))  # fmt: skip
        cursor = end

    for row in rows:
        if body and count(LINE.join([header, rule, *body, row])) > max_tokens:
            flush()
            body = []
        body.append(row)
    if body:
        flush()
    if parts:
        parts[0] = replace(parts[0], start=piece.start)
    oversized = [p for p in parts if count(p.text) > max_tokens]
    if not oversized:
        return parts
    plain = [replace(p, table=False) for p in parts]
    return [f for p in plain for f in _fitted(p, max_tokens, max_tokens, count, text)]


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
