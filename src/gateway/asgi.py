"""The ASGI application factory the server imports (``gateway.asgi:create_app``)."""

from __future__ import annotations

from adapters.http.app import create_app as create_http_app
from adapters.http.asgi_types import ASGIApp
from gateway import __version__
from gateway.container import Container, open_services
from gateway.logging import configure_logging
from gateway.settings import Settings, load_settings


def build(settings: Settings, container: Container | None = None) -> ASGIApp:
    """The app on ``settings``; ``container`` is the one to serve from if given (a test's,
    with parts overridden)."""
    container = container or Container(settings=settings)
    return create_http_app(
        services=lambda: open_services(container),
        metrics=container.infrastructure.request_metrics(),
        max_body_bytes=settings.max_body_bytes,
        max_document_bytes=settings.max_document_bytes,
        cors_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
        shutdown_grace_s=settings.shutdown_grace_s,
        # An open circuit refuses for this long at most: a fair time to come back.
        retry_after_s=settings.circuit_cooldown_s,
        max_target_bytes=settings.max_uri_bytes,
        max_header_bytes=settings.max_header_bytes,
        body_timeout_s=settings.body_read_timeout_s,
        upload_dir=settings.data_path / "uploads",
        version=__version__,
    )


def create_app() -> ASGIApp:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return build(settings)
