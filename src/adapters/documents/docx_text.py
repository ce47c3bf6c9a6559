"""DOCX as markdown-like text with the standard library (``zipfile`` and ElementTree):
headings by paragraph style, tables as markdown tables. A zip bomb is refused: the
parts read are bounded in size as they are decompressed (a zip's own size fields can
lie), and in their compression ratio; XML with a DTD (entity expansion) is refused."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from adapters.documents.html_text import markdown_table
from domain.documents import ExtractedText
from domain.errors import UnreadableDocument

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DOCUMENT_PART, STYLES_PART = "word/document.xml", "word/styles.xml"
MAX_PART_BYTES = 64 * 1024 * 1024  # decompressed
MAX_RATIO = 200  # decompressed / compressed, per part
_HEADING_STYLE = re.compile(r"^(?:heading|berschrift|titre|titolo)\s*([1-9])$", re.I)
_READ = 1 << 16


def read_docx(path: Path, name: str) -> ExtractedText:
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            if DOCUMENT_PART not in members:
                raise UnreadableDocument(
                    f"{name}: a zip file but not a Word document (no {DOCUMENT_PART})",
                    param="file",
                )
            document = _part(archive, DOCUMENT_PART, name)
            styles = _part(archive, STYLES_PART, name) if STYLES_PART in members else b""
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        NotImplementedError,
    ) as exc:
        raise UnreadableDocument(f"{name}: not a readable DOCX ({exc})", param="file") from None
    levels = _heading_levels(styles, name)
    root = _xml(document, name)
    body = root.find(f"{W}body")
    if body is None:
        raise UnreadableDocument(f"{name}: the Word document has no body", param="file")
    blocks: list[str] = []
    for element in body:
        if element.tag == f"{W}p":
            text = _paragraph_text(element)
            level = levels.get(_style_of(element) or "", 0)
            if text.strip():
                blocks.append(f"{'#' * level} {text.strip()}" if level else text.strip())
        elif element.tag == f"{W}tbl":
            rows = [
                [" ".join(_paragraph_text(p) for p in cell.iter(f"{W}p")).strip()
                 for cell in row.findall(f"{W}tc")]
                for row in element.findall(f"{W}tr")
            ]  # fmt: skip
            table = markdown_table([r for r in rows if r])
            if table:
                blocks.append(table)
    return ExtractedText("\n\n".join(blocks) + "\n", "docx")


def _part(archive: zipfile.ZipFile, member: str, name: str) -> bytes:
    info = archive.getinfo(member)
    limit = min(MAX_PART_BYTES, max(info.compress_size, 1) * MAX_RATIO)
    out = bytearray()
    with archive.open(info) as stream:
        while chunk := stream.read(_READ):
            out += chunk
            if len(out) > limit:
                raise UnreadableDocument(
                    f"{name}: {member} decompresses to more than {limit} bytes "
                    f"(from {info.compress_size}): refused as a zip bomb",
                    param="file",
                )
    return bytes(out)


def _xml(raw: bytes, name: str) -> ElementTree.Element:
    if b"<!DOCTYPE" in raw[:4096].upper() or b"<!ENTITY" in raw.upper():
        raise UnreadableDocument(f"{name}: the Word document declares a DTD", param="file")
    try:
        return ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise UnreadableDocument(f"{name}: the Word document's XML is malformed ({exc})",
                                 param="file") from None  # fmt: skip


def _heading_levels(styles: bytes, name: str) -> dict[str, int]:
    """Style id → heading level: ``Heading1``... by id, or by the style's name (a
    localised Word names them ``berschrift 1``, ``Titre 1``); ``Title`` is level 1."""
    levels = {f"Heading{n}": n for n in range(1, 10)} | {"Title": 1}
    if not styles:
        return levels
    for style in _xml(styles, name).iter(f"{W}style"):
        style_id = style.get(f"{W}styleId") or ""
        named = style.find(f"{W}name")
        label = named.get(f"{W}val", "") if named is not None else ""
        for candidate in (style_id, label):
            found = _HEADING_STYLE.match(candidate.replace("Ü", "").replace("ü", ""))
            if found:
                levels[style_id] = int(found.group(1))
        if label.lower() == "title":
            levels[style_id] = 1
    return levels


def _style_of(paragraph: ElementTree.Element) -> str | None:
    style = paragraph.find(f"{W}pPr/{W}pStyle")
    return style.get(f"{W}val") if style is not None else None


def _paragraph_text(paragraph: ElementTree.Element) -> str:
    parts = []
    for node in paragraph.iter():
        if node.tag == f"{W}t" and node.text:
            parts.append(node.text)
        elif node.tag == f"{W}tab":
            parts.append("\t")
        elif node.tag in (f"{W}br", f"{W}cr"):
            parts.append(" ")
    return "".join(parts)
