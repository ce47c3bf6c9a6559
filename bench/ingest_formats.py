"""Ingestion throughput per file format: parse time per MB, pages/s (PDF) and chunks/s,
with the embedded embedder (parse, chunk, embed, index) and with embeddings given
(parse, chunk, index: what a deployment whose embeddings come from elsewhere pays).

    .venv/bin/python -m bench.ingest_formats [--repeat 3]

The same text (``docs/api.md`` and ``README.md``, as paragraphs under their headings)
is written as markdown, HTML, DOCX (zipfile) and PDF (fpdf2, Helvetica: the text is
reduced to Latin-1), then each file goes through the gateway's own reader
(``SniffingFileReader``), chunker and a Qdrant Edge shard in a temporary folder, in this
process. Times are the best of ``--repeat`` runs (embedding: one run, the same work
each time). Results:
``bench/results/ingest_formats.{json,md}``."""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import tempfile
import time
from pathlib import Path

from fpdf import FPDF
from pypdf import PdfReader
from tests.document_files import docx

from adapters.documents.file_reader import read_file
from adapters.inference.onnx_embedder import OnnxMiniLMEmbedder
from adapters.vector.qdrant_index import QdrantEdgeIndex
from domain.chunking import chunk_text, on_pages
from domain.documents import Document, Scope

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MB = 1024 * 1024


def blocks() -> list[tuple[str, str]]:
    """(kind, text): headings (h1-h3) and paragraphs of the source text, code dropped."""
    found: list[tuple[str, str]] = []
    for path in (ROOT / "docs" / "api.md", ROOT / "README.md"):
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for block in re.split(r"\n\s*\n", text):
            block = " ".join(block.split())
            if not block:
                continue
            heading = re.match(r"^(#{1,3})\s+(.*)", block)
            if heading:
                found.append((f"h{len(heading.group(1))}", heading.group(2)))
            elif not re.fullmatch(r"[|\-: ]+", block):
                found.append(("p", block))
    return [(k, t.encode("latin-1", "replace").decode("latin-1")) for k, t in found]


def write_files(folder: Path, copies: int) -> dict[str, Path]:
    parts = blocks() * copies
    markdown = "\n\n".join(f"{'#' * int(k[1])} {t}" if k != "p" else t for k, t in parts)
    body = "".join(f"<{k}>{html.escape(t)}</{k}>" for k, t in parts)
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.add_page()
    for kind, text in parts:
        pdf.set_font("Helvetica", style="B" if kind != "p" else "", size=10)
        pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    files = {
        "markdown": folder / "doc.md",
        "html": folder / "doc.html",
        "docx": folder / "doc.docx",
        "pdf": folder / "doc.pdf",
    }
    files["markdown"].write_text(markdown, encoding="utf-8")
    files["html"].write_text(f"<!doctype html><html><body>{body}</body></html>", encoding="utf-8")
    files["docx"].write_bytes(docx(parts))
    files["pdf"].write_bytes(bytes(pdf.output()))
    return files


async def measure(files: dict[str, Path], repeat: int) -> list[dict[str, object]]:
    embedder = OnnxMiniLMEmbedder(intra_op_threads=2)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        index = QdrantEdgeIndex(Path(folder) / "documents", embedder.dimension)
        for kind, path in files.items():
            parse = chunking = embedding = indexing = float("inf")
            vectors: list[list[float]] = []
            for attempt in range(repeat):
                started = time.perf_counter()
                extracted = read_file(path.name, path)
                parse = min(parse, time.perf_counter() - started)
                started = time.perf_counter()
                chunks = on_pages(
                    chunk_text(f"doc-{kind}", extracted.text, embedder.count_tokens),
                    extracted.page_starts,
                )
                chunking = min(chunking, time.perf_counter() - started)
                if not vectors:  # once: minutes on a busy CPU, and the same work each time
                    started = time.perf_counter()
                    vectors = await embedder.embed_documents([c.text for c in chunks])
                    embedding = time.perf_counter() - started
                document = Document(f"doc-{kind}", "bench", f"{kind}-{attempt}", extracted.text,
                                    Scope.TENANT, {}, extracted.page_starts)  # fmt: skip
                started = time.perf_counter()
                await index.replace(document, chunks, vectors)
                indexing = min(indexing, time.perf_counter() - started)
            size_mb = path.stat().st_size / MB
            pages = len(PdfReader(path).pages) if kind == "pdf" else None
            full = parse + chunking + embedding + indexing
            given = parse + chunking + indexing
            rows.append(
                {
                    "format": kind,
                    "file_mb": round(size_mb, 3),
                    "pages": pages,
                    "chunks": len(chunks),
                    "parse_s": round(parse, 4),
                    "parse_s_per_mb": round(parse / size_mb, 3),
                    "chunk_s": round(chunking, 3),
                    "embed_s": round(embedding, 3),
                    "index_s": round(indexing, 3),
                    "embedded_chunks_per_s": round(len(chunks) / full, 1),
                    "given_chunks_per_s": round(len(chunks) / given, 1),
                    "embedded_pages_per_s": round(pages / full, 2) if pages else None,
                    "given_pages_per_s": round(pages / given, 2) if pages else None,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        await index.close()
    embedder.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=3, help="the source text, repeated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = asyncio.run(measure(write_files(Path(folder), args.copies), args.repeat))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_formats.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| format | file | pages | chunks | parse | parse per MB | chunk | embed | index "
        "| chunks/s (embedded) | chunks/s (given) | pages/s (embedded) | pages/s (given) |",
        "|---" * 13 + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['format']} | {r['file_mb']} MB | {r['pages'] or ''} | {r['chunks']} | "
            f"{r['parse_s']} s | {r['parse_s_per_mb']} s | {r['chunk_s']} s | {r['embed_s']} s "
            f"| {r['index_s']} s | {r['embedded_chunks_per_s']} | {r['given_chunks_per_s']} | "
            f"{r['embedded_pages_per_s'] or ''} | {r['given_pages_per_s'] or ''} |"
        )
    table = "\n".join(lines)
    (RESULTS / "ingest_formats.md").write_text(
        f"# Ingestion per format (`python -m bench.ingest_formats`)\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
