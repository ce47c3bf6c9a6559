"""The httpx client the gateway shares across its upstream calls."""

from __future__ import annotations

from typing import Any

import httpx


class _CookiesWhenSet(httpx.Cookies):
    """A cookie jar that reads an answer only when it sets a cookie: httpx's jar parses
    every answer through urllib's cookie machinery (40 % of httpx's own time per request
    in a profile), and upstreams almost never set one."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class UpstreamClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` with the cheaper cookie jar; everything else as httpx does
    it (cookies an upstream sets, a load balancer's affinity for one, are still sent
    back on later requests)."""

    def __init__(self, *, cookies: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._jar = _CookiesWhenSet(cookies)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._jar = _CookiesWhenSet(cookies)
