"""``SniffingFileReader``: the document reader port over local files, each read as what
its first bytes say it is (PDF, DOCX, HTML, markdown, text), on a worker thread."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.documents.docx_text import read_docx
from adapters.documents.html_text import html_to_text
from adapters.documents.pdf_text import read_pdf
from adapters.documents.sniffing import DOCX, HEAD_BYTES, HTML, PDF, sniff
from domain.documents import ExtractedText
from domain.errors import UnreadableDocument, UnsupportedDocument

FORMATS = "PDF, DOCX, HTML, markdown or UTF-8 text"


class SniffingFileReader:
    async def read(self, name: str, path: Path) -> ExtractedText:
        # Parsing is CPU work (a PDF: tens of ms per page): off the event loop.
        return await asyncio.to_thread(read_file, name, path)


def read_file(name: str, path: Path) -> ExtractedText:
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    kind = sniff(head, name)
    if kind is None:
        raise UnsupportedDocument(f"{name}: not a {FORMATS} file", param="file")
    if kind == PDF:
        return read_pdf(path, name)
    if kind == DOCX:
        return read_docx(path, name)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(
            f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            param="file",
        ) from None
    return html_to_text(text) if kind == HTML else ExtractedText(text, kind)
