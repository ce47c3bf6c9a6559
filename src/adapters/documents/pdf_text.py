"""PDF text with ``pypdf`` (pure Python): each page's text layer, pages in order. No OCR:
a scan without a text layer is refused, as are encrypted and corrupt files."""

from __future__ import annotations

import logging
from pathlib import Path

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


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
