"""PDF text with ``pypdf`` (pure Python): each page's text layer, pages in order. No OCR:
a scan without a text layer is refused, as are encrypted and corrupt files. The PDF's
outline (its bookmarks), when it has one, gives the headings: each entry becomes a
markdown heading of its depth at the start of the page it points to, so chunks get
heading paths as they do in markdown."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from domain.documents import ExtractedText
from domain.errors import UnreadableDocument

PAGE_BREAK = "\n\n"
# pypdf logs every oddity of a damaged file as a warning; the refusal says what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def read_pdf(path: Path, name: str) -> ExtractedText:
    try:
        reader = PdfReader(path)
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises many kinds on a damaged file
        raise UnreadableDocument(
            f"{name}: not a readable PDF ({_reason(exc)})", param="file"
        ) from None
    if encrypted:
        raise UnreadableDocument(
            f"{name}: the PDF is encrypted; upload it without a password", param="file"
        )
    texts = []
    try:
        for page in reader.pages:
            texts.append((page.extract_text() or "").strip())
    except Exception as exc:
        raise UnreadableDocument(
            f"{name}: not a readable PDF ({_reason(exc)})", param="file"
        ) from None
    if any(texts):
        for number, headings in _outline(reader).items():
            if 0 <= number < len(texts):
                texts[number] = "\n\n".join([*headings, texts[number]]).strip()
    if not any(texts):
        raise UnreadableDocument(
            f"{name}: the PDF has no text layer (a scan?); it would need OCR, which the "
            "gateway does not do",
            param="file",
        )
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(PAGE_BREAK)
    return ExtractedText(PAGE_BREAK.join(texts), "pdf", tuple(starts))


def _outline(reader: PdfReader) -> dict[int, list[str]]:
    """Page index → the markdown headings of the outline entries pointing to it, in
    order; nothing when the outline cannot be read (it is optional)."""
    found: dict[int, list[str]] = defaultdict(list)

    def walk(entries: list[Any], depth: int) -> None:
        for entry in entries:
            if isinstance(entry, list):
                walk(entry, depth + 1)
                continue
            title = " ".join(str(getattr(entry, "title", "") or "").split())
            page = reader.get_destination_page_number(entry)
            if title and page is not None and depth <= 6:
                found[page].append(f"{'#' * depth} {title}")

    try:
        walk(reader.outline, 1)
    except Exception:  # a damaged outline costs the headings, not the document
        return {}
    return found


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
