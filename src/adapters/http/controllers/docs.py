"""The API's documentation at the seed's paths: ``/docs`` (Swagger UI), ``/redoc`` and
``/openapi.json``. Litestar serves its own under ``/schema``; mounting that at the root
would claim every one-segment path."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin

from adapters.http.openapi import with_undeclared_media, with_wire_bounds

_SWAGGER = SwaggerRenderPlugin(path="/docs")
_REDOC = RedocRenderPlugin(path="/redoc")


def _schema(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return with_undeclared_media(with_wire_bounds(request.app.openapi_schema.to_schema()))


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(_schema(request), media_type="application/vnd.oai.openapi+json")


@get("/docs", include_in_schema=False, sync_to_thread=False)
def swagger_ui(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(_SWAGGER.render(request, _schema(request)), media_type="text/html")


@get("/redoc", include_in_schema=False, sync_to_thread=False)
def redoc(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(_REDOC.render(request, _schema(request)), media_type="text/html")


DOCS_HANDLERS = [openapi_json, swagger_ui, redoc]
