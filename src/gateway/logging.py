"""structlog set-up: JSON lines (msgspec-encoded) or a console rendering for humans.
The standard library's loggers (granian's, the libraries', ``warnings``) go through the
same renderer, so that in JSON mode every line is one JSON object."""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import msgspec
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _json(event: Any, **_: Any) -> bytes:
    return msgspec.json.encode(event, enc_hook=str)


def _json_text(event: Any, **_: Any) -> str:
    return _json(event).decode()


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def stdlib_formatter(log_format: str = "json") -> logging.Formatter:
    """A ``logging`` formatter rendering a record as structlog renders its events."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if log_format == "console"
        else structlog.processors.JSONRenderer(serializer=_json_text)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared(), structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def stdlib_config(log_format: str = "json", level: str = "info") -> dict[str, Any]:
    """``logging.config.dictConfig`` of the standard library's loggers (the HTTP server
    takes it too). Libraries' chatter below WARNING stays out unless the level is debug."""
    root_level = _LEVELS[level] if level == "debug" else max(logging.WARNING, _LEVELS[level])
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "gateway",
        "stream": "ext://sys.stdout",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": {"()": stdlib_formatter, "log_format": log_format}},
        "handlers": {"gateway": handler},
        "root": {"handlers": ["gateway"], "level": root_level},
        "loggers": {
            # The server's own lines (start, workers, stop) and the gateway's.
            "_granian": {"handlers": ["gateway"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["gateway"], "level": "INFO", "propagate": False},
            "gateway": {"level": _LEVELS[level]},
        },
    }


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    shared = _shared()
    if log_format == "console":
        processors = [*shared, structlog.dev.ConsoleRenderer()]
        factory: Any = structlog.PrintLoggerFactory(sys.stdout)
    else:
        processors = [
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json),
        ]
        factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(stdlib_config(log_format, level))
    logging.captureWarnings(True)
