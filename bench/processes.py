"""The processes a benchmark run starts: each in a session of its own (so that its
workers stop with it), optionally pinned to cores, and every one of them stopped when
the run ends, on Ctrl-C, SIGTERM and failures too."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(argv: Sequence[str], cores: str | None) -> list[str]:
    """``taskset`` execs the program, so the pid stays the program's."""
    return ["taskset", "-c", cores, *argv] if cores else list(argv)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C does, so every ``finally`` runs."""

    def interrupt(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def _processes() -> list[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) per process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces: the fields after it follow the last ')'.
            found.append((int(entry.name), stat.rpartition(")")[2].split()))
    return found


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc: no psutil in the venv)."""
    return sorted(p for p, fields in _processes() if int(fields[1]) == pid)


def _group(pgid: int) -> list[int]:
    """Live processes of a process group (zombies aside)."""
    return [p for p, fields in _processes() if fields[0] != "Z" and int(fields[2]) == pgid]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` and its descendants (all threads).
    Per request it is a measure that other jobs on the machine hardly disturb, unlike
    wall-clock figures."""
    table = _processes()
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for p, fields in table:
            if int(fields[1]) == parent and p not in tree:
                tree.add(p)
                frontier.append(p)
    ticks = sum(int(f[11]) + int(f[12]) for p, f in table if p in tree)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Fleet:
    """Started processes, stopped in reverse order when the ``with`` block ends."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cores: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pipe_stdout: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv``; its output goes to ``<log_dir>/<name>.log`` (stdout to a pipe
        with ``pipe_stdout``, for a ready line)."""
        log = (self.log_dir / f"{name}.log").open("wb")
        with log:
            process = subprocess.Popen(
                pinned(argv, cores),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log,
                stderr=log,
                start_new_session=True,
            )
        self._started.append((name, process))
        return process

    def stop_all(self) -> None:
        while self._started:
            _, process = self._started.pop()
            stop(process)


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM to the process's group (its workers too), SIGKILL to what is left of the
    group after ``grace_s``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    deadline = time.monotonic() + grace_s
    while _group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is None or _group(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    if process.stdout is not None:
        process.stdout.close()


def ready_port(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """The port of a ``READY <port>`` line (the fake upstream's)."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline().decode() if readable else ""
    if not line.startswith("READY "):
        raise RuntimeError(f"process {process.args!r} did not start: {line!r}")
    return int(line.split()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Until ``url`` answers 200; fails early when the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{process.args!r} exited ({process.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s (log: {log})")
