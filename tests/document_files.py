"""Files of every format the knowledge base reads, made in the tests (no binary fixtures
in the repository): PDFs with fpdf2 (encrypted ones with pypdf), DOCX with zipfile."""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def pdf(pages: list[list[str]]) -> bytes:
    """A PDF with a text layer: one page per entry, one line of text per string."""
    document = FPDF()
    document.set_font("Helvetica", size=11)
    for lines in pages:
        document.add_page()
        for line in lines:
            document.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages with drawings only: what a scan without OCR looks like to a text reader."""
    document = FPDF()
    for _ in range(pages):
        document.add_page()
        document.set_fill_color(40, 40, 40)
        for row in range(20):
            document.rect(20, 20 + row * 12, 170, 6, style="F")
    return bytes(document.output())


def encrypted_pdf(password: str = "s3cret") -> bytes:
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf([["Confidential figures."]]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def corrupt_pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ngarbage\x00\xff" * 3


def _paragraph(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{props}<w:r><w:t>{escape(text)}</w:t></w:r></w:p>"


def _table(rows: list[list[str]]) -> str:
    cells = "".join(
        "<w:tr>" + "".join(f"<w:tc>{_paragraph(c)}</w:tc>" for c in row) + "</w:tr>" for row in rows
    )
    return f"<w:tbl>{cells}</w:tbl>"


def docx(blocks: list[tuple[str, object]]) -> bytes:
    """A Word document: ``("h1"|"h2", text)`` headings by style, ``("p", text)``
    paragraphs, ``("table", rows)`` tables."""
    body = []
    for kind, value in blocks:
        if kind == "table":
            body.append(_table(value))  # type: ignore[arg-type]
        elif kind in ("h1", "h2", "h3"):
            body.append(_paragraph(str(value), f"Heading{kind[1]}"))
        else:
            body.append(_paragraph(str(value)))
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{W_NS}"><w:body>{"".join(body)}</w:body></w:document>'
    )
    return _zip({"word/document.xml": document.encode()})


def zip_bomb_docx(megabytes: int = 40) -> bytes:
    """A DOCX whose document part inflates ~1000 times (spaces compress that well)."""
    head = f'<?xml version="1.0"?><w:document xmlns:w="{W_NS}"><w:body>'.encode()
    return _zip({"word/document.xml": head + b" " * (megabytes * 1024 * 1024)})


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"/>',
        )
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def outlined_pdf(sections: list[tuple[int, str, list[str]]]) -> bytes:
    """A PDF with an outline: one page per ``(level, title, lines)``, its outline entry
    at ``level`` (0: top)."""
    document = FPDF()
    document.set_font("Helvetica", size=11)
    for level, title, lines in sections:
        document.add_page()
        document.start_section(title, level=level)
        for line in lines:
            document.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())
