"""What the embedded model refuses, and how its requests are translated."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.inference.llama_embedded import refuse_unsupported, translated
from domain.errors import UnsupportedParameter

MESSAGES = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {}}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [TOOL]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"functions": [TOOL["function"]]}, "functions"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_refuses_what_the_model_cannot_do_naming_the_parameter(
    extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedParameter) as raised:
        refuse_unsupported({"model": "m", "messages": MESSAGES, **extra})

    assert raised.value.param == param


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"n": 1},
        {"response_format": {"type": "json_object"}},
        {"response_format": {"type": "text"}},
        {"logprobs": True, "top_logprobs": 3},
        {"tools": []},
        {"seed": 1, "temperature": 0.2, "stop": ["\n"]},
    ],
)
def test_accepts_what_the_model_can_do(extra: dict[str, Any]) -> None:
    refuse_unsupported({"model": "m", "messages": MESSAGES, **extra})


def test_max_completion_tokens_becomes_max_tokens() -> None:
    assert translated({"model": "m", "max_completion_tokens": 5}) == {"model": "m", "max_tokens": 5}


def test_max_tokens_already_given_wins_over_max_completion_tokens() -> None:
    body = {"model": "m", "max_tokens": 3, "max_completion_tokens": 5}

    assert translated(body) == {"model": "m", "max_tokens": 3}


def test_stream_options_are_dropped() -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}

    assert translated(body) == {"model": "m", "stream": True}


def test_everything_else_passes_untouched_and_the_input_is_not_changed() -> None:
    body = {"model": "m", "messages": MESSAGES, "seed": 7, "max_completion_tokens": 9}

    out = translated(body)

    assert out == {"model": "m", "messages": MESSAGES, "seed": 7, "max_tokens": 9}
    assert body == {"model": "m", "messages": MESSAGES, "seed": 7, "max_completion_tokens": 9}
