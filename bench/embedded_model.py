"""How to run the embedded model: in process (a worker thread) or as a supervised
``llama_cpp.server`` child. Measures, for each, time to first token, tokens/s, and how
late the gateway's event loop wakes up while a generation runs (what every other
request in the gateway would wait).

    .venv/bin/python -m bench.embedded_model
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.inference.llama_server import LlamaCppServerProcess, locate_smollm2

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
TOKENS = 64
RUNS = 5


async def loop_lag(stop: asyncio.Event) -> list[float]:
    """Milliseconds by which 1 ms sleeps overshoot while the generation runs."""
    lags = []
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - started) * 1000 - 1)
    return lags


async def in_process() -> dict[str, Any]:
    from llama_cpp import Llama

    llama = Llama(str(locate_smollm2()), n_ctx=2048, verbose=False)
    ttfts, rates, lags = [], [], []
    for _ in range(RUNS):
        stop = asyncio.Event()
        lag_task = asyncio.create_task(loop_lag(stop))
        first: list[float] = []
        count = 0
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def generate(
            first: list[float], done: asyncio.Future[None], loop: asyncio.AbstractEventLoop
        ) -> None:
            nonlocal count
            for _chunk in llama.create_chat_completion(PROMPT, max_tokens=TOKENS, stream=True):
                if not first:
                    first.append(time.perf_counter())
                count += 1
            loop.call_soon_threadsafe(done.set_result, None)

        threading.Thread(target=generate, args=(first, done, loop)).start()
        await done
        elapsed = time.perf_counter() - started
        stop.set()
        lags.extend(await lag_task)
        ttfts.append((first[0] - started) * 1000)
        rates.append(count / elapsed)
    return summary("in process (thread)", ttfts, rates, lags)


async def child_process() -> dict[str, Any]:
    server = LlamaCppServerProcess(
        locate_smollm2(), log_path=Path(tempfile.mkdtemp()) / "llama.log", context=2048
    )
    await server.start()
    ttfts, rates, lags = [], [], []
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            for _ in range(RUNS):
                stop = asyncio.Event()
                lag_task = asyncio.create_task(loop_lag(stop))
                body = {"model": server.alias, "messages": PROMPT, "max_tokens": TOKENS,
                        "stream": True}  # fmt: skip
                started = time.perf_counter()
                first = None
                count = 0
                async with client.stream(
                    "POST", f"{server.base_url}/chat/completions", json=body
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: {"):
                            json.loads(line[6:])
                            first = first or time.perf_counter()
                            count += 1
                elapsed = time.perf_counter() - started
                stop.set()
                lags.extend(await lag_task)
                ttfts.append((first - started) * 1000 if first else 0.0)
                rates.append(count / elapsed)
    finally:
        await server.stop()
    return summary("child llama_cpp.server", ttfts, rates, lags)


def summary(name: str, ttfts: list[float], rates: list[float], lags: list[float]) -> dict[str, Any]:
    lags.sort()
    return {
        "mode": name,
        "ttft_ms_median": round(statistics.median(ttfts), 1),
        "tokens_per_s_median": round(statistics.median(rates), 1),
        "loop_lag_ms_p50": round(lags[len(lags) // 2], 2),
        "loop_lag_ms_p99": round(lags[int(len(lags) * 0.99)], 2),
        "loop_lag_ms_max": round(lags[-1], 2),
    }


async def main() -> None:
    rows = [await in_process(), await child_process()]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
