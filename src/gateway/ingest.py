"""``gateway ingest PATH...``: load files (markdown, text, PDF, DOCX, HTML) into a RUNNING
gateway's knowledge base.

It is a client of ``POST /v1/documents`` like any other, so it works the same against a
local or a remote deployment and the key's tier applies. Each document is named by its
path relative to the folder given (``--prefix`` places it: ``--prefix projA`` makes
``projA/README.md``), so two projects ingested under their own prefixes never overwrite
each other; the summary tells the documents added from those replaced, and ``--dry-run``
says which would be, sending nothing. Text files go in JSON batches; PDF, DOCX and HTML
files are uploaded one by one (the gateway reads them by their content). A file that
cannot be sent is reported and the rest go on. Exit status: 0 all ingested, 1 some
failed, 2 nothing could be sent (bad arguments, no key, no gateway)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from adapters.documents.sniffing import DOCX, HEAD_BYTES, PDF, sniff
from domain.documents import file_name_problem

TEXT_SUFFIXES = (".md", ".markdown", ".txt")
UPLOAD_SUFFIXES = (".pdf", ".docx", ".html", ".htm")
SUFFIXES = TEXT_SUFFIXES + UPLOAD_SUFFIXES
DEFAULT_URL = "http://localhost:9000"
DEFAULT_MAX_BYTES = 10_485_760  # the gateway's default GATEWAY_MAX_DOCUMENT_BYTES
MAX_BATCH = 256  # documents per request the gateway accepts
TIMEOUT = httpx.Timeout(300.0, connect=10.0)  # embedding a large batch takes a while on CPU


class UsageError(Exception):
    """Nothing can be sent: exit status 2."""


class FileProblem(Exception):
    """This file cannot be ingested; the others go on."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    source: str  # --prefix, then the path relative to the folder given, or the file's name
    upload: bool = False  # sent as a file (PDF, DOCX, HTML), not as JSON text


@dataclass(frozen=True, slots=True)
class Done:
    chunks: int
    replaced: bool


@dataclass(frozen=True, slots=True)
class Encoded:
    file: SourceFile
    json: bytes  # the document as it goes into the request's "documents" list


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "ingest",
        help="send files and folders to a running gateway's knowledge base",
        description=(
            "Send markdown, text, PDF, DOCX and HTML files (folders are walked) to a running "
            "gateway's POST /v1/documents. A file's source is --prefix, then its path "
            "relative to the folder given (or its name); ingesting a source again replaces "
            "it, and the summary says how many were added and how many replaced. Exit "
            "status: 0 all ingested, 1 some failed, 2 nothing could be sent."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    parser.add_argument("--url", help=f"the gateway (GATEWAY_URL, else {DEFAULT_URL})")
    parser.add_argument("--key", help="a developer or admin key (GATEWAY_API_KEY)")
    parser.add_argument(
        "--scope",
        choices=("tenant", "global"),
        default="tenant",
        help="global: visible to every tenant (admin keys only); default %(default)s",
    )
    parser.add_argument("--metadata", default="{}", help="JSON object stored with each file")
    parser.add_argument(
        "--prefix",
        default="",
        help="placed before each document's source: --prefix projA makes projA/README.md",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say which documents would be added and which replaced; send nothing",
    )
    parser.add_argument("--chunk-size", type=int, help="tokens per chunk (default: the gateway's)")
    parser.add_argument("--chunk-overlap", type=int, help="tokens shared by consecutive chunks")
    parser.add_argument(
        "--batch", type=_batch_size, default=16, help="documents per request (%(default)s)"
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help="largest request the gateway accepts (%(default)s)",
    )


def _batch_size(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH}")
    return number


def collect(
    paths: Sequence[str], note: Callable[[str], None], prefix: str = ""
) -> list[SourceFile]:
    """The files to send, folders walked in name order (hidden entries left out): those
    with a known suffix, and PDF or DOCX files whatever their name (by their content)."""
    found: list[SourceFile] = []
    place = f"{prefix.rstrip('/')}/" if prefix.strip("/") else ""
    for given in map(Path, paths):
        if given.is_dir():
            for folder, dirs, names in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(n for n in names if not n.startswith(".")):
                    path = Path(folder, name)
                    source = place + path.relative_to(given).as_posix()
                    _add(found, path, source, note)
        elif not given.exists() and not given.is_symlink():
            raise UsageError(f"{given}: no such file or folder")
        else:
            _add(found, given, place + given.name, note)
    return found


def _add(found: list[SourceFile], path: Path, source: str, note: Callable[[str], None]) -> None:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        found.append(SourceFile(path, source))
    elif suffix in UPLOAD_SUFFIXES or _binary_document(path):
        found.append(SourceFile(path, source, upload=True))
    else:
        note(f"skipped {path}: not a {', '.join(SUFFIXES)} (or PDF/DOCX by content) file")


def _binary_document(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return sniff(file.read(HEAD_BYTES), path.name) in (PDF, DOCX)
    except OSError:
        return False


def encode(file: SourceFile, fields: dict[str, Any], max_bytes: int) -> Encoded:
    """The file as one document of a request; ``FileProblem`` if it cannot be one."""
    try:
        size = file.path.stat().st_size
        if size > max_bytes:
            raise FileProblem(f"too large: {size} bytes, the limit is {max_bytes}")
        raw = file.path.read_bytes()
    except OSError as exc:
        raise FileProblem(f"cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not text.strip():
        raise FileProblem("empty")
    document = {"text": text, "source": file.source, **fields}
    body = json.dumps(document, ensure_ascii=False).encode()
    if len(body) > max_bytes:
        raise FileProblem(f"too large: {len(body)} bytes as JSON, the limit is {max_bytes}")
    return Encoded(file, body)


def batches(documents: Iterable[Encoded], size: int, max_bytes: int) -> Iterator[list[Encoded]]:
    """At most ``size`` documents, and a request body of at most ``max_bytes``."""
    batch: list[Encoded] = []
    used = len(_body([]))
    for document in documents:
        if batch and (len(batch) == size or used + len(document.json) + 1 > max_bytes):
            yield batch
            batch, used = [], len(_body([]))
        batch.append(document)
        used += len(document.json) + 1
    if batch:
        yield batch


def _body(batch: Sequence[Encoded]) -> bytes:
    return b'{"documents":[' + b",".join(d.json for d in batch) + b"]}"


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:200] or response.reason_phrase
    return f"the gateway answered {response.status_code}: {message}"


class Uploader:
    """Sends batches; a batch the gateway refuses is sent again file by file, so the
    error names the file (ingesting is idempotent: a source replaces itself)."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self._client = client
        self._url = url

    def send(self, batch: Sequence[Encoded]) -> list[tuple[Encoded, Done | str]]:
        """Each document with its outcome, or the reason it was not ingested."""
        try:
            response = self._client.post(
                "/v1/documents",
                content=_body(batch),
                headers={"Content-Type": "application/json"},
            )
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise UsageError(f"cannot reach the gateway at {self._url}: {exc}") from None
            return [(d, f"no answer from the gateway in {TIMEOUT.read:.0f} s") for d in batch]
        except httpx.TransportError as exc:
            raise UsageError(f"cannot reach the gateway at {self._url}: {exc}") from None
        if response.status_code == 201:
            done = [_done(d) for d in response.json()["data"]]
            return list(zip(batch, done, strict=True))
        _stop_on_key_refusal(response)
        if len(batch) > 1 and response.status_code < 500:
            return [result for document in batch for result in self.send([document])]
        return [(d, _error_message(response)) for d in batch]

    def upload(self, file: SourceFile, fields: dict[str, Any], max_bytes: int) -> Done | str:
        """One file as a multipart upload (the gateway reads it by its content)."""
        try:
            size = file.path.stat().st_size
            if size > max_bytes:
                return f"too large: {size} bytes, the limit is {max_bytes}"
            with file.path.open("rb") as handle:
                response = self._client.post(
                    "/v1/documents",
                    files={"file": (file.path.name, handle)},
                    data={"source": file.source, **_form(fields)},
                )
        except OSError as exc:
            return f"cannot read it: {exc.strerror or exc}"
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise UsageError(f"cannot reach the gateway at {self._url}: {exc}") from None
            return f"no answer from the gateway in {TIMEOUT.read:.0f} s"
        except httpx.TransportError as exc:
            raise UsageError(f"cannot reach the gateway at {self._url}: {exc}") from None
        if response.status_code == 201:
            body = response.json()
            if body.get("data"):
                return _done(body["data"][0])
            return "; ".join(e["message"] for e in body.get("errors", [])) or "not ingested"
        _stop_on_key_refusal(response)
        return _error_message(response)


def _done(document: dict[str, Any]) -> Done:
    return Done(int(document["chunk_count"]), bool(document.get("replaced", False)))


def _form(fields: dict[str, Any]) -> dict[str, str]:
    """The JSON document's fields as a multipart form's."""
    form = {"scope": str(fields["scope"]), "metadata": json.dumps(fields["metadata"])}
    for name in ("chunk_size", "chunk_overlap"):
        if fields.get(name) is not None:
            form[name] = str(fields[name])
    return form


def _stop_on_key_refusal(response: httpx.Response) -> None:
    """No later request could succeed with this key: one message, and stop."""
    if response.status_code == 401:
        raise UsageError(f"the key was refused: {_error_message(response)}")
    if response.status_code == 403:
        raise UsageError(f"the key may not write documents: {_error_message(response)}")


def _options(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    url = (args.url or os.environ.get("GATEWAY_URL") or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the gateway's URL must start with http:// or https://, not {url!r}")
    key = args.key or os.environ.get("GATEWAY_API_KEY")
    if not key:
        raise UsageError("no API key: pass --key or set GATEWAY_API_KEY (developer or admin)")
    try:
        metadata = json.loads(args.metadata)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--metadata is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise UsageError("--metadata must be a JSON object")
    problem = file_name_problem(args.prefix)
    if problem:
        raise UsageError(f"--prefix {args.prefix!r}: {problem.replace('its name', 'it')}")
    fields: dict[str, Any] = {"metadata": metadata, "scope": args.scope}
    for name in ("chunk_size", "chunk_overlap"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return url, key, fields


class Progress:
    """Where the run stands, on stderr. On a terminal, a bar redrawn in place (files,
    chunks, seconds) with each failure on a line of its own above it; elsewhere (a log,
    a pipe), one line per file as its outcome is known."""

    WIDTH = 30

    def __init__(self, files: Sequence[SourceFile], stream: TextIO | None = None) -> None:
        self.files = files
        self.chunks = 0
        self.replaced = 0
        self.ingested: list[SourceFile] = []
        self.failed: list[SourceFile] = []
        self._stream = stream or sys.stderr
        self._bar = self._stream.isatty()
        self._started = time.perf_counter()

    def ok(self, file: SourceFile, done: Done) -> None:
        self.ingested.append(file)
        self.chunks += done.chunks
        self.replaced += done.replaced
        how = "replaced" if done.replaced else "added"
        plural = "" if done.chunks == 1 else "s"
        self._report(f"{file.path}: {how} as {file.source} ({done.chunks} chunk{plural})")

    def error(self, file: SourceFile, reason: str) -> None:
        self.failed.append(file)
        self._report(f"{file.path}: error: {reason}", always=True)

    def unreported(self) -> list[SourceFile]:
        reported = {id(f) for f in (*self.ingested, *self.failed)}
        return [f for f in self.files if id(f) not in reported]

    def close(self) -> None:
        if self._bar:
            self._stream.write("\n")
            self._stream.flush()

    def bar(self) -> str:
        total = len(self.files)
        done = len(self.ingested) + len(self.failed)
        filled = self.WIDTH * done // total if total else self.WIDTH
        seconds = time.perf_counter() - self._started
        return (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} files, "
            f"{self.chunks} chunks, {len(self.failed)} failed, {seconds:.1f} s"
        )

    def _report(self, text: str, *, always: bool = False) -> None:
        if not self._bar:
            total = len(self.files)
            done = len(self.ingested) + len(self.failed)
            self._stream.write(f"[{done:>{len(str(total))}}/{total}] {text}\n")
        elif always:  # clear the bar, the line above it, then the bar again
            self._stream.write(f"\r\033[K{text}\n{self.bar()}")
        else:
            self._stream.write(f"\r\033[K{self.bar()}")
        self._stream.flush()


def _prepared(
    files: Sequence[SourceFile], fields: dict[str, Any], max_bytes: int, progress: Progress
) -> Iterator[Encoded]:
    """Files read as they are sent (not all held in memory); the ones that cannot be
    sent are reported on the way."""
    first_with: dict[str, SourceFile] = {}
    for file in files:
        earlier = first_with.setdefault(file.source, file)
        try:
            if earlier is not file:
                raise FileProblem(
                    f"its source {file.source!r} is that of {earlier.path} too, which it "
                    "would replace: ingest it on its own"
                )
            yield encode(file, fields, max_bytes)
        except FileProblem as problem:
            progress.error(file, str(problem))


def ingest(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    url, key, fields = _options(args)
    files = collect(args.paths, _say, args.prefix)
    if not files:
        raise UsageError(f"nothing to ingest: no {', '.join(SUFFIXES)} files in the paths given")
    headers = {"Authorization": f"Bearer {key}"}
    if args.dry_run:
        with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT) as client:
            return dry_run(client, url, files, args.scope, args.prefix)
    _say(f"ingesting {len(files)} files into {url}")
    progress = Progress(files)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT) as client:
            uploader = Uploader(client, url)
            texts = [f for f in files if not f.upload]
            ready = _prepared(texts, fields, args.max_bytes, progress)
            for batch in batches(ready, args.batch, args.max_bytes):
                for document, outcome in uploader.send(batch):
                    _report(progress, document.file, outcome)
            for file in _unique([f for f in files if f.upload], texts, progress):
                _report(progress, file, uploader.upload(file, fields, args.max_bytes))
    finally:
        progress.close()
        unsent = len(progress.unreported())
        added = len(progress.ingested) - progress.replaced
        print(
            f"ingested {len(progress.ingested)} of {len(files)} files ({added} added, "
            f"{progress.replaced} replaced; {progress.chunks} chunks) in "
            f"{time.perf_counter() - started:.1f} s; {len(progress.failed)} failed"
            + (f", {unsent} not sent" if unsent else "")
        )
    return 1 if progress.failed else 0


def _report(progress: Progress, file: SourceFile, outcome: Done | str) -> None:
    if isinstance(outcome, Done):
        progress.ok(file, outcome)
    else:
        progress.error(file, outcome)


def _unique(
    uploads: Sequence[SourceFile], texts: Sequence[SourceFile], progress: Progress
) -> Iterator[SourceFile]:
    """The uploads whose source no earlier file has (that one would be replaced)."""
    first_with = {f.source: f for f in reversed(texts)}
    for file in uploads:
        earlier = first_with.setdefault(file.source, file)
        if earlier is file:
            yield file
        else:
            progress.error(
                file,
                f"its source {file.source!r} is that of {earlier.path} too, which it would "
                "replace: ingest it on its own",
            )


def dry_run(
    client: httpx.Client, url: str, files: Sequence[SourceFile], scope: str, prefix: str
) -> int:
    """Which documents would be added and which replaced (the key's own documents of the
    same scope with the same source); nothing is sent."""
    existing = _existing_sources(client, url, scope, prefix)
    replaced = 0
    width = len(str(len(files)))
    for number, file in enumerate(files, 1):
        known = file.source in existing
        replaced += known
        how = "would replace" if known else "would add"
        print(f"[{number:>{width}}/{len(files)}] {how} {file.source} ({file.path})")
    print(
        f"dry run: {len(files)} files, {len(files) - replaced} would be added, {replaced} "
        "replaced; nothing sent"
    )
    return 0


def _existing_sources(client: httpx.Client, url: str, scope: str, prefix: str) -> set[str]:
    params: dict[str, Any] = {"limit": 100}
    if prefix:
        params["source"] = prefix
    sources: set[str] = set()
    while True:
        try:
            response = client.get("/v1/documents", params=params)
        except httpx.TransportError as exc:
            raise UsageError(f"cannot reach the gateway at {url}: {exc}") from None
        if response.status_code != 200:
            _stop_on_key_refusal(response)
            raise UsageError(f"cannot list the documents: {_error_message(response)}")
        page = response.json()
        sources.update(d["source"] for d in page["data"] if d["scope"] == scope)
        if not page["has_more"]:
            return sources
        params["after"] = page["data"][-1]["id"]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """``gateway ingest``; returns the exit status."""
    try:
        return ingest(args)
    except UsageError as exc:
        _say(f"gateway ingest: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("gateway ingest: interrupted (files already sent stay ingested)")
        return 130
