"""A graceful shutdown with a deadline: requests still running ``grace_s`` after SIGTERM
are cancelled, so the process exits soon after the grace period whatever was running (a
large upload being ingested takes minutes).

The server (granian) waits for every open request before it lets the app shut down, and
its worker's SIGTERM handler is its own. This handler takes SIGTERM over, arms the
deadline and passes the signal on as SIGINT, which the server handles the same way (it
registers both, as uvicorn does)."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog

from adapters.http.observability import InFlight

log = structlog.get_logger("gateway.http")


def stop_requests_after_grace(in_flight: InFlight, grace_s: float) -> None:
    """From SIGTERM on, ``grace_s`` for the requests running to finish; then they stop.
    Where signals cannot be handled (not the main thread), nothing changes."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        stopped = in_flight.cancel()
        if stopped:
            log.warning(
                "shutdown: %d requests still running after %.0f s: stopped", stopped, grace_s
            )

    def terminated() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.call_later(grace_s, stop)
        os.kill(os.getpid(), signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGTERM, terminated)
    except (NotImplementedError, RuntimeError, ValueError):
        return
