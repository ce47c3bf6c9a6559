"""The knowledge base's file reader port: a file as text the chunker can cut."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from domain.documents import ExtractedText


class DocumentReader(Protocol):
    """Reads a file on local disk by its content (its name breaks ties only).

    Errors: ``UnsupportedDocument`` for a file of no type it reads, and
    ``UnreadableDocument`` for one it cannot read (corrupt, encrypted, a zip bomb, a scan
    without a text layer); both name the file (``name``) and the reason."""

    async def read(self, name: str, path: Path) -> ExtractedText: ...
