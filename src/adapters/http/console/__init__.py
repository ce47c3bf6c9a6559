"""The web console at ``/ui``: static files only (hand-written HTML, CSS and JavaScript
modules in ``static/``, shipped with the package: no CDN, no build step, no Node).

The page signs in with an API key kept in the browser tab's ``sessionStorage`` and calls
the public API with it, so each page shows what the key's tier and tenant may see and
nothing else: the console has no endpoint of its own besides its files. The files are
read once at import, answered from memory with an ``ETag`` (a revalidation is a 304)
and a Content-Security-Policy that lets the page load and connect to its own origin only
and run no inline script. The routes need no key (the files hold no data) and stay out
of the OpenAPI document, like ``/docs``."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

STATIC = Path(__file__).resolve().parent / "static"

# Nothing from another origin, no inline script or style, no plugin, no framing, no
# form posted anywhere: the page's scripts reach the gateway's API with fetch only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# (nosniff, DENY framing and no-referrer are on every answer of the gateway already.)
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
# The page itself is revalidated every time (a new gateway version is seen at once);
# the assets are cached for an hour and then revalidated with their ETag.
PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=3600"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_NO_AUTH = {"exclude_from_auth": True}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes  # compressed once, at import
    media_type: str
    etag: str


def _load(path: Path) -> Asset:
    body = path.read_bytes()
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    return Asset(body, gzipped, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


ASSETS = {
    p.name: _load(p) for p in sorted(STATIC.iterdir()) if p.is_file() and p.name != "index.html"
}
PAGE = _load(STATIC / "index.html")


def _answer(request: Request[Any, Any, Any], asset: Asset, cache: str) -> Response[bytes]:
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": cache,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@get("/ui", include_in_schema=False, sync_to_thread=False, opt=_NO_AUTH)
def console_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    if raw_path.endswith(b"/"):
        # The page's URLs are relative to ``/ui``: ``/ui/`` would resolve them wrongly.
        return Redirect(path="../ui", status_code=308)
    return _answer(request, PAGE, PAGE_CACHE)


@get("/ui/assets/{name:str}", include_in_schema=False, sync_to_thread=False, opt=_NO_AUTH)
def console_asset(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFoundException(f"the console has no file {name!r}")
    return _answer(request, asset, ASSET_CACHE)


CONSOLE_HANDLERS: list[ControllerRouterHandler] = [console_page, console_asset]
