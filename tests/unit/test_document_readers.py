"""The knowledge base's file readers: each format told by its content, read into
markdown-like text (headings, tables, pages), and every unreadable file refused with
its name and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.documents.file_reader import read_file
from adapters.documents.html_text import html_to_text
from domain.chunking import chunk_text, on_pages
from domain.errors import UnreadableDocument, UnsupportedDocument
from tests import document_files as files


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "file"
    path.write_bytes(data)
    return path


def words(text: str) -> int:
    return len(text.split())


def test_pdf_pages_are_kept_in_order_with_where_each_starts(tmp_path: Path) -> None:
    data = files.pdf([["Descaling takes ten minutes."], ["The warranty lasts two years."]])
    found = read_file("manual.pdf", write(tmp_path, "manual.pdf", data))
    assert found.format == "pdf"
    assert len(found.page_starts) == 2
    second = found.text[found.page_starts[1] :]
    assert second.startswith("The warranty lasts two years.")
    assert "Descaling" in found.text[: found.page_starts[1]]


def test_a_pdf_is_read_as_one_whatever_its_name(tmp_path: Path) -> None:
    data = files.pdf([["Named as text, made as a PDF."]])
    assert read_file("notes.txt", write(tmp_path, "notes.txt", data)).format == "pdf"


def test_chunks_of_a_pdf_carry_their_page(tmp_path: Path) -> None:
    pages = [[f"Page {n} sentence {i} about topic {n}." for i in range(30)] for n in (1, 2, 3)]
    found = read_file("long.pdf", write(tmp_path, "long.pdf", files.pdf(pages)))
    chunks = on_pages(chunk_text("doc", found.text, words, 60, 10), found.page_starts)
    assert {c.page for c in chunks} == {1, 2, 3}
    for chunk in chunks:
        assert f"Page {chunk.page} sentence" in found.text[chunk.start : chunk.end]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (files.scanned_pdf(), "no text layer"),
        (files.encrypted_pdf(), "encrypted"),
        (files.corrupt_pdf(), "not a readable PDF"),
        (files.zip_bomb_docx(), "zip bomb"),
        (b"PK\x03\x04 not really a zip", "not a readable DOCX"),
    ],
    ids=["scanned", "encrypted", "corrupt", "zip-bomb", "broken-zip"],
)
def test_unreadable_files_are_refused_naming_the_file_and_reason(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(UnreadableDocument) as refused:
        read_file("report.bin", write(tmp_path, "report.bin", data))
    assert refused.value.message.startswith("report.bin: ")
    assert reason in refused.value.message


def test_binary_of_another_kind_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedDocument, match=r"^photo\.png: not a PDF"):
        read_file("photo.png", write(tmp_path, "photo.png", b"\x89PNG\r\n\x1a\n" + bytes(200)))


def test_docx_headings_by_style_and_tables_as_markdown(tmp_path: Path) -> None:
    data = files.docx(
        [
            ("h1", "Price list"),
            ("p", "Prices include tax."),
            ("h2", "Drinks"),
            ("table", [["Item", "Price"], ["Tea", "3"], ["Coffee", "4"]]),
        ]
    )
    found = read_file("prices.docx", write(tmp_path, "prices.docx", data))
    assert found.text == (
        "# Price list\n\nPrices include tax.\n\n## Drinks\n\n"
        "| Item | Price |\n|---|---|\n| Tea | 3 |\n| Coffee | 4 |\n"
    )


def test_html_drops_scripts_and_styles_keeps_headings_and_tables() -> None:
    html = """<!doctype html><html><head><title>x</title><style>p{color:red}</style>
    <script>steal()</script></head><body><h1>Guide</h1><p>Read <b>this</b>.</p>
    <script>document.write('injected')</script><h2>Sizes</h2>
    <table><tr><th>Size</th><th>Cups</th></tr><tr><td>S</td><td>1 | 2</td></tr></table>
    </body></html>"""
    text = html_to_text(html).text
    assert "steal" not in text
    assert "injected" not in text
    assert "color" not in text
    assert text == (
        "# Guide\n\nRead this.\n\n## Sizes\n\n| Size | Cups |\n|---|---|\n| S | 1 \\| 2 |\n"
    )


def test_html_is_told_by_its_content(tmp_path: Path) -> None:
    data = b"<!DOCTYPE html><html><body><h2>Hello</h2><p>World</p></body></html>"
    found = read_file("page.txt", write(tmp_path, "page.txt", data))
    assert found.format == "html"
    assert found.text == "## Hello\n\nWorld\n"


def test_text_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnreadableDocument, match=r"^latin\.txt: not UTF-8 text"):
        read_file("latin.txt", write(tmp_path, "latin.txt", "café crème".encode("latin-1")))


def test_a_pdf_outline_gives_the_chunks_heading_paths(tmp_path: Path) -> None:
    body = [f"Sentence {i} of the section text." for i in range(12)]
    data = files.outlined_pdf([(0, "Manual", body), (1, "Descaling", body), (1, "Warranty", body)])
    found = read_file("manual.pdf", write(tmp_path, "manual.pdf", data))
    chunks = on_pages(chunk_text("doc", found.text, words, 40, 5), found.page_starts)
    paths = {(c.page, c.heading_path) for c in chunks}
    assert (1, ("Manual",)) in paths
    assert (2, ("Manual", "Descaling")) in paths
    assert (3, ("Manual", "Warranty")) in paths
