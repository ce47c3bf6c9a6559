"""What a file is, by its first bytes (its name only breaks the tie between markdown,
plain text and HTML without a doctype)."""

from __future__ import annotations

import re

PDF, DOCX, HTML, MARKDOWN, TEXT = "pdf", "docx", "html", "markdown", "text"
HEAD_BYTES = 4096
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_MARKDOWN_SUFFIXES = (".md", ".markdown")


def sniff(head: bytes, name: str) -> str | None:
    """The format of a file that starts with ``head``; None: no format read here (a
    binary file of another kind, or text in an encoding other than UTF-8)."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX  # a zip: the DOCX reader checks it holds a Word document
    if b"\x00" in head:
        return None  # binary (text in another encoding is named as such by the reader)
    lower = name.lower()
    if _HTML_START.match(head) or lower.endswith(_HTML_SUFFIXES):
        return HTML
    return MARKDOWN if lower.endswith(_MARKDOWN_SUFFIXES) else TEXT
