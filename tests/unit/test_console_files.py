"""The console's files as the gateway holds them: every file of ``static/`` is served,
gzipped to the same bytes, with a stable ETag; the page loads scripts as files only."""

from __future__ import annotations

import gzip
import re

from adapters.http.console import ASSETS, CONTENT_SECURITY_POLICY, PAGE, STATIC, _load


def test_every_static_file_is_served() -> None:
    files = {p.name for p in STATIC.iterdir() if p.is_file()}
    assert set(ASSETS) | {"index.html"} == files
    for name, asset in ASSETS.items():
        assert gzip.decompress(asset.gzipped) == asset.body, name
        assert asset.etag == _load(STATIC / name).etag  # the same bytes, the same tag
    assert ASSETS["app.js"].media_type.startswith("text/javascript")
    assert ASSETS["console.css"].media_type.startswith("text/css")


def test_the_page_names_only_its_own_files() -> None:
    html = PAGE.body.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    for source in sources:
        assert source.startswith(("ui/assets/", "#/", "docs")), source
        if source.startswith("ui/assets/"):
            assert source.removeprefix("ui/assets/") in ASSETS


def test_every_module_import_is_a_served_file() -> None:
    for name, asset in ASSETS.items():
        if not name.endswith(".js"):
            continue
        for imported in re.findall(
            r'from "\./([^"]+)"|import\("\./([^"]+)"\)', asset.body.decode()
        ):
            target = imported[0] or imported[1]
            assert target in ASSETS, f"{name} imports {target}"


def test_the_policy_allows_no_other_origin() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for directive, value in directives.items():
        for source in value.split():
            assert source in {"'self'", "'none'"}, (directive, source)
