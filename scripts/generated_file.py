"""The command line both file generators share: print the file, ``--write`` it, or
``--check`` that the committed one is what the generator makes now."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(
    target: Path, generate: Callable[[], str], *, script: str, doc: str, argv: list[str] | None
) -> int:
    """``script`` is the generator's ``__file__``, ``doc`` its docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {target.name}")
    mode.add_argument("--check", action="store_true", help=f"fail if {target.name} differs")
    args = parser.parse_args(argv)
    text = generate()
    if args.write:
        target.parent.mkdir(exist_ok=True)
        target.write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")
    elif args.check:
        if not target.is_file() or target.read_text() != text:
            command = f"python {Path(script).resolve().relative_to(ROOT)} --write"
            print(f"{target.relative_to(ROOT)} is out of date: run {command}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0
