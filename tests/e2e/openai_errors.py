"""The one check of OpenAI's error body, for every non-2xx answer the suites see."""

from __future__ import annotations

from typing import Any

import httpx

UNCHECKED: Any = object()
ERROR_FIELDS = {"message", "type", "param", "code"}


def assert_openai_error(
    response: httpx.Response, status: int, *, param: Any = UNCHECKED, code: Any = UNCHECKED
) -> dict[str, Any]:
    """``response`` has ``status`` and exactly ``{"error": {message, type, param, code}}``
    (no traceback); ``param``/``code`` are compared when given. Returns the error."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_FIELDS, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert isinstance(error["type"], str), error
    assert error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    if param is not UNCHECKED:
        assert error["param"] == param, error
    if code is not UNCHECKED:
        assert error["code"] == code, error
    return dict(error)
