"""Turns for a model server: how many requests it is sent at once, how many may wait."""

from __future__ import annotations

import asyncio

from domain.errors import UpstreamOverloaded


class Turns:
    """At most ``max_in_flight`` requests outstanding (past it: ``UpstreamOverloaded``
    at once instead of a queue without end); of those, ``concurrency`` (when set) sent
    at once, the others waiting their turn in order for at most ``timeout_s``."""

    def __init__(
        self,
        server: str,
        *,
        max_in_flight: int | None = None,
        concurrency: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.server = server
        self.in_flight = 0
        self.waiting = 0
        self._max_in_flight = max_in_flight
        self._turns = asyncio.Semaphore(concurrency) if concurrency else None
        self._timeout = timeout_s

    async def enter(self) -> None:
        if self._max_in_flight is not None and self.in_flight >= self._max_in_flight:
            raise UpstreamOverloaded(
                f"{self.server} is busy: {self.in_flight} requests are already waiting; "
                "retry shortly"
            )
        self.in_flight += 1
        if self._turns is not None:
            await self._take_turn(self._turns)

    async def _take_turn(self, turns: asyncio.Semaphore) -> None:
        self.waiting += 1
        try:
            async with asyncio.timeout(self._timeout):
                await turns.acquire()
        except TimeoutError:
            self.in_flight -= 1
            raise UpstreamOverloaded(
                f"{self.server} is busy: the request waited its turn for "
                f"{self._timeout:.0f} s; retry shortly"
            ) from None
        except BaseException:
            self.in_flight -= 1
            raise
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self._turns is not None:
            self._turns.release()
