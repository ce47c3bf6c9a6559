"""Multipart uploads spooled to disk as they arrive: a file part goes straight into a file
under the upload directory, so an upload of N MB never holds N MB of the worker's memory.

The body is parsed as it streams in (``multipart``'s push parser); the form's text fields
are small and kept in memory (each at most ``MAX_FIELD_BYTES``). A body announced larger
than the limit is refused (413) before a byte of it is read, and one that grows past it
while streaming is refused as soon as it does. ``SpooledForm`` removes its files when
closed: after the ingest, on an error, or when the request is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from litestar import Request
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from domain.errors import InvalidRequest, RequestTooLarge

MAX_FIELD_BYTES = 65_536  # a text field (metadata, source, scope...) of the form
MAX_PARTS = 1_000
# A spool left by a worker that died mid-upload (a kill, a crash) is removed by the next
# upload once it is this old: far older than any upload and its ingest can be.
STALE_AFTER_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class SpooledFile:
    filename: str
    path: Path
    size: int
    content_type: str | None


@dataclass
class SpooledForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[SpooledFile] = field(default_factory=list)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the upload is larger than the limit of {limit} bytes")


@asynccontextmanager
async def spooled_form(
    request: Request[Any, Any, Any], directory: Path, limit: int
) -> AsyncIterator[SpooledForm]:
    """The multipart form of ``request``, its files on disk under ``directory`` until
    the block is left (however it is left)."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidRequest("the multipart upload has no boundary", param="file")
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)  # before reading any of it
    spool = await asyncio.to_thread(_new_spool, directory)
    try:
        yield await _receive(request, boundary, spool, limit)
    finally:
        # Off the loop: many or large files take a moment to unlink.
        await asyncio.to_thread(shutil.rmtree, spool, True)


def _new_spool(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stale = time.time() - STALE_AFTER_S
    for left in directory.glob("upload-*"):
        with contextlib.suppress(OSError):  # another worker may remove it first
            if left.stat().st_mtime < stale:
                shutil.rmtree(left, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="upload-", dir=directory))


async def _receive(
    request: Request[Any, Any, Any], boundary: str, spool: Path, limit: int
) -> SpooledForm:
    form = SpooledForm()
    received = 0
    part: MultipartSegment | None = None
    sink: IO[bytes] | None = None
    text = bytearray()
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_PARTS) as parser:
            async for chunk in _stream(request):
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit)
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        part = event
                        if part.filename is not None:
                            path = spool / f"{len(form.files)}.part"
                            sink = path.open("wb")
                    elif event is not None and part is not None:
                        if sink is not None:
                            sink.write(event)
                        else:
                            text += event
                            if len(text) > MAX_FIELD_BYTES:
                                raise InvalidRequest(
                                    f"the form field {part.name!r} is longer than "
                                    f"{MAX_FIELD_BYTES} bytes",
                                    param=part.name,
                                )
                    elif part is not None:  # the end of a part
                        _finish(form, part, sink, text)
                        sink, part, text = None, None, bytearray()
            if not parser.closed:
                for _ in parser.parse(b""):  # the end of the input: the form must be whole
                    pass
    except MultipartError as exc:
        raise InvalidRequest(f"the multipart upload is malformed: {exc}", param="file") from None
    finally:
        if sink is not None:
            sink.close()
    return form


def _finish(
    form: SpooledForm,
    part: MultipartSegment,
    sink: IO[bytes] | None,
    text: bytearray,
) -> None:
    if sink is None:
        try:
            form.fields.setdefault(part.name or "", text.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"the form field {part.name!r} is not UTF-8", param=part.name
            ) from None
        return
    sink.close()
    form.files.append(
        SpooledFile(
            filename=part.filename or "",
            path=Path(sink.name),
            size=part.size,
            content_type=part.content_type,
        )
    )


async def _stream(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk
