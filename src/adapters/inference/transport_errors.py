"""One map from httpx's (and the aiohttp transport's) exceptions to the port's errors,
applied at the boundary of every adapter that talks HTTP to a model server (httpx's own
``map_httpcore_exceptions()`` is the model). Each port names its error classes once
(``CHAT``, ``EMBEDDING``); the map and its wording are the same for all."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import aiohttp
import httpx

from domain.errors import (
    EmbeddingUnavailable,
    GatewayError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)


class Retryable(Exception):
    """Marks a port error as safe to send again: the request never reached the server,
    or it answered 502, 429 or 503 (so it did no work). ``retry_after_s``: how long it
    asked the client to wait, when it said."""

    retry_after_s: float | None = None


class RetryableUnavailable(Retryable, UpstreamUnavailable):
    pass


class RetryableOverloaded(Retryable, UpstreamOverloaded):
    """The upstream answered 429/503, possibly saying when to come back."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RetryableEmbeddingUnavailable(Retryable, EmbeddingUnavailable):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EmbeddingRefused(EmbeddingUnavailable):
    """The embedding server answered and refused this request (its 4xx): it works."""


@dataclass(frozen=True, slots=True)
class PortErrors:
    """The errors one port raises for a transport failure, and how it names its server."""

    server: str
    timeout: type[GatewayError]
    unavailable: type[GatewayError]
    never_sent: type[GatewayError]


CHAT = PortErrors("inference upstream", UpstreamTimeout, UpstreamUnavailable, RetryableUnavailable)
EMBEDDING = PortErrors(
    "embedding server",
    EmbeddingUnavailable,
    EmbeddingUnavailable,
    RetryableEmbeddingUnavailable,
)


def never_sent(exc: httpx.TransportError) -> bool:
    # The aiohttp transport maps every dropped connection to a connect error; only a
    # failure to connect proves that the request was not sent.
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectionError):
        return isinstance(cause, aiohttp.ClientConnectorError)
    return isinstance(exc, httpx.ConnectError)


def port_error(errors: PortErrors, upstream: str, exc: BaseException) -> GatewayError | None:
    """The port's error for a transport failure; None for anything else."""
    server = f"{errors.server} {upstream}"
    if isinstance(exc, TimeoutError):
        return errors.timeout(f"{server} did not answer in time")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        if never_sent(exc):
            return errors.never_sent(f"{server} refused the connection")
        return errors.unavailable(f"{server} is unreachable or closed the connection")
    if isinstance(exc, httpx.TimeoutException):
        return errors.timeout(f"{server} did not answer in time")
    if isinstance(exc, httpx.TransportError | httpx.StreamError):
        return errors.unavailable(f"{server} is unreachable")
    if isinstance(exc, aiohttp.ClientError):
        # What the aiohttp transport does not map itself (e.g. a malformed HTTP answer).
        return errors.unavailable(f"{server} broke the protocol")
    return None


class TranslatedTransport:
    """``with translated:`` turns a transport failure into the port's error. A class,
    not a generator context manager: one instance per upstream, reused by every request
    (measured: 3 % of a request's CPU otherwise)."""

    __slots__ = ("errors", "upstream")

    def __init__(self, upstream: str, errors: PortErrors = CHAT) -> None:
        self.upstream = upstream
        self.errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            error = port_error(self.errors, self.upstream, exc)
            if error is not None:
                raise error from exc


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` seconds of a 429/503, when given as a number."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
