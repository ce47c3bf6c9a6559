"""The API's documentation at the seed's paths: ``/docs`` (Swagger UI), ``/redoc`` and
``/openapi.json``. Both viewers are served by the gateway itself from ``static/``
(pinned copies with their licences), so they work with no network: the pages name no
other origin. Litestar serves its own under ``/schema``; mounting that at the root
would claim every one-segment path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from adapters.http.openapi import (
    access_by_operation,
    with_security,
    with_undeclared_media,
    with_wire_bounds,
)

STATIC = Path(__file__).resolve().parent.parent / "static"
# Under /docs, which is public (no key needed to read the documentation).
ASSETS = "/docs/assets"
_TITLE = "AI Platform Gateway"

# Relative URLs: the pages still work behind a proxy that mounts the gateway on a prefix.
_SWAGGER_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_TITLE} - Swagger UI</title>
<link rel="stylesheet" href="docs/assets/swagger-ui/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
  validatorUrl: null, tryItOutEnabled: false
}});
</script></body></html>
""".encode()

_REDOC_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_TITLE} - ReDoc</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head><body><redoc spec-url="openapi.json"></redoc>
<script src="docs/assets/redoc/redoc.standalone.js"></script>
</body></html>
""".encode()


def _schema(request: Request[Any, Any, Any]) -> dict[str, Any]:
    document = with_undeclared_media(with_wire_bounds(request.app.openapi_schema.to_schema()))
    return with_security(document, access_by_operation(request.app))


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(_schema(request), media_type="application/vnd.oai.openapi+json")


@get("/docs", include_in_schema=False, sync_to_thread=False)
def swagger_ui() -> Response[bytes]:
    return Response(_SWAGGER_PAGE, media_type="text/html")


@get("/redoc", include_in_schema=False, sync_to_thread=False)
def redoc() -> Response[bytes]:
    return Response(_REDOC_PAGE, media_type="text/html")


assets = create_static_files_router(
    path=ASSETS, directories=[STATIC], include_in_schema=False, name="docs-assets"
)

DOCS_HANDLERS: list[ControllerRouterHandler] = [openapi_json, swagger_ui, redoc, assets]
