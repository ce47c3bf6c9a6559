"""An upstream's refusal, made safe to show the client who caused it."""

from __future__ import annotations

import pytest

from adapters.inference.upstream_reason import MAX_CHARS, client_safe_reason


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "frequency_penalty must be between -2 and 2",
            "frequency_penalty must be between -2 and 2",
        ),
        ("bad role\nTraceback (most recent call last):\n  File x", "bad role"),
        ("failed with key sk-abc123def456", "failed with key [redacted]"),
        ("header Bearer abc.def was refused", "header Bearer [redacted] was refused"),
        ("api_key=hunter2 rejected", "api_key=[redacted] rejected"),
        ("cannot reach http://10.1.2.3:8000/v1", "cannot reach [address]"),
        ("bind 192.168.0.7:9000 failed", "bind [address] failed"),
        ("error in /srv/app/chat_format.py line 3", "error in [path] line 3"),
        ("digest " + "a1" * 20, "digest [redacted]"),
        ("", "no reason given"),
        (
            "1 validation error:\n  {'type': 'less_than_equal', 'loc': ('body', "
            "'frequency_penalty'), 'msg': 'Input should be less than or equal to 2', 'input': 5}",
            "Input should be less than or equal to 2 (at `frequency_penalty`)",
        ),
    ],
)
def test_what_is_shown(text: str, shown: str) -> None:
    assert client_safe_reason(text) == shown


def test_a_long_reason_is_cut() -> None:
    assert len(client_safe_reason("x " * 1000)) == MAX_CHARS
