"""OpenAI chat messages for an upstream that knows only the plain form: ``system`` for
``developer``, one string for a list of text parts, no ``name`` (llama_cpp.server's
chat templates are written for ``{"role", "content": str}``).

A part that is not text (an image, audio, a file) cannot be flattened: it is refused
with a 400 naming the part's type, instead of the upstream's 500."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.errors import UnsupportedParameter

# Roles the plain form knows; ``developer`` is OpenAI's newer name for ``system``.
_RENAMED_ROLES = {"developer": "system"}
# ``name`` is part of these roles' form; on the others it is dropped.
_NAMED_ROLES = ("function",)


def _text_of(parts: Sequence[Any], number: int) -> str:
    texts = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            shown = kind if isinstance(kind, str) else type(part).__name__
            raise UnsupportedParameter(
                f"the model takes text only: messages[{number}].content[{index}] is a "
                f"{shown!r} part",
                param=f"messages[{number}].content[{index}].type",
            )
        texts.append(part["text"])
    return "\n".join(texts)


def plain_message(message: Mapping[str, Any], number: int) -> dict[str, Any]:
    out = dict(message)
    role = out.get("role")
    if isinstance(role, str) and role in _RENAMED_ROLES:
        out["role"] = role = _RENAMED_ROLES[role]
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = _text_of(content, number)
    if role not in _NAMED_ROLES:
        out.pop("name", None)
    return out


def plain_messages(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with its messages in the plain form (the rest untouched)."""
    out = dict(body)
    messages = body.get("messages")
    if isinstance(messages, list):
        out["messages"] = [
            plain_message(m, n) if isinstance(m, Mapping) else m for n, m in enumerate(messages)
        ]
    return out
