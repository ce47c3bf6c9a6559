"""``gateway ingest``'s progress: a bar redrawn in place on a terminal, one line per
file elsewhere; failures always on a line of their own."""

from __future__ import annotations

import io
from pathlib import Path

from gateway.ingest import Done, Progress, SourceFile


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


FILES = [SourceFile(Path(f"docs/{name}.md"), f"{name}.md") for name in ("a", "b", "c", "d")]


def test_on_a_terminal_the_bar_is_redrawn_in_place_and_failures_get_a_line() -> None:
    screen = Terminal()
    progress = Progress(FILES, screen)

    progress.ok(FILES[0], Done(3, replaced=False))
    progress.error(FILES[1], "not UTF-8")
    progress.ok(FILES[2], Done(1, replaced=True))
    progress.close()

    output = screen.getvalue()
    lines = output.split("\n")
    # One failure line, then the bar drawn over itself; a final newline ends it.
    assert lines[0].endswith("docs/b.md: error: not UTF-8")
    last_bar = lines[1].split("\r\033[K")[-1]
    assert last_bar.startswith("[" + "#" * 22 + "." * 8 + "] 3/4 files, 4 chunks, 1 failed")
    assert lines[2] == ""
    assert "docs/a.md" not in output  # successes only move the bar


def test_elsewhere_each_file_gets_a_line_and_no_control_characters() -> None:
    log = io.StringIO()
    progress = Progress(FILES, log)

    progress.ok(FILES[0], Done(1, replaced=False))
    progress.ok(FILES[2], Done(2, replaced=True))
    progress.error(FILES[1], "too large")
    progress.close()

    assert log.getvalue().splitlines() == [
        "[1/4] docs/a.md: added as a.md (1 chunk)",
        "[2/4] docs/c.md: replaced as c.md (2 chunks)",
        "[3/4] docs/b.md: error: too large",
    ]
    assert "\r" not in log.getvalue()
    assert "\033" not in log.getvalue()


def test_the_bar_is_full_when_every_file_is_done() -> None:
    progress = Progress(FILES[:1], Terminal())
    progress.ok(FILES[0], Done(7, replaced=False))

    assert progress.bar().startswith("[" + "#" * Progress.WIDTH + "] 1/1 files, 7 chunks")
