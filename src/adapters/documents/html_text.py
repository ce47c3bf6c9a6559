"""HTML as markdown-like text with the standard library's ``html.parser``: scripts,
styles and other non-content dropped, headings as ``#`` lines, tables as markdown
tables, paragraphs and list items on lines of their own."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from domain.documents import ExtractedText

_DROPPED = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "ul", "ol",
     "blockquote", "pre", "figure", "figcaption", "dl", "dt", "dd", "form", "address", "hr"}
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "wbr"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


def html_to_text(html: str) -> ExtractedText:
    parser = _Markdown()
    parser.feed(html)
    parser.close()
    return ExtractedText(parser.text(), "html")


class _Markdown(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._line: list[str] = []
        self._dropped = 0  # depth inside dropped elements
        self._heading = 0
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            if tag not in _VOID:
                self._dropped += 1
            return
        if self._dropped:
            return
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._block()
            self._heading = int(tag[1])
        elif tag == "table":
            self._block()
            self._table = []
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in {"td", "th"} and self._table is not None:
            self._cell = []
        elif tag == "li":
            self._newline()
            self._line.append("- ")
        elif tag == "br":
            self._newline()
        elif tag == "pre":
            self._block()
            self._pre += 1
        elif tag in _BLOCKS:
            self._block()

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self._dropped = max(0, self._dropped - 1)
            return
        if self._dropped:
            return
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"} and self._heading:
            title = _SPACES.sub(" ", "".join(self._line)).strip()
            self._line = []
            if title:
                self._out.append(f"{'#' * self._heading} {title}")
            self._heading = 0
        elif tag in {"td", "th"} and self._cell is not None and self._table:
            self._table[-1].append(_SPACES.sub(" ", "".join(self._cell)).strip())
            self._cell = None
        elif tag == "table" and self._table is not None:
            table, self._table = self._table, None
            self._out.append(markdown_table([row for row in table if row]))
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._block()
        elif tag == "li":
            self._newline()
        elif tag in _BLOCKS:
            self._block()

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._table is not None:
            return  # text between cells: whitespace
        elif self._pre:
            for i, part in enumerate(data.split("\n")):
                if i:
                    self._newline()
                self._line.append(part)
        else:
            self._line.append(data.replace("\n", " "))

    def _newline(self) -> None:
        line = "".join(self._line) if self._pre else _SPACES.sub(" ", "".join(self._line)).strip()
        self._line = []
        if line.strip():
            self._out.append(line)

    def _block(self) -> None:
        self._newline()
        if self._out and self._out[-1] != "":
            self._out.append("")

    def text(self) -> str:
        self._block()
        lines: list[str] = []
        for line in self._out:
            if line == "" and (not lines or lines[-1] == ""):
                continue
            if line.startswith(("#", "|")) and lines and lines[-1] != "":
                lines.append("")
            lines.append(line)
            if line.startswith("#"):
                lines.append("")
        return "\n".join(lines).strip() + "\n"


def markdown_table(rows: list[list[str]]) -> str:
    """Rows as a markdown table, the first row as its header; ``|`` in a cell escaped."""
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    cells = [[c.replace("|", "\\|") for c in row] + [""] * (width - len(row)) for row in rows]
    lines = [f"| {' | '.join(cells[0])} |", f"|{'---|' * width}"]
    lines += [f"| {' | '.join(row)} |" for row in cells[1:]]
    return "\n".join(lines)
