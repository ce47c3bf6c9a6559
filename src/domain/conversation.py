"""A conversation sent to ``/v1/chat``: its messages, the question it asks, and how it
is put to the model with the retrieved context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Conversation:
    messages: tuple[Message, ...]

    @classmethod
    def of(cls, messages: Sequence[tuple[str, str]]) -> Conversation:
        if not messages:
            raise InvalidRequest("`messages` must not be empty", param="messages")
        checked = []
        for number, (role, content) in enumerate(messages):
            if role not in ROLES:
                raise InvalidRequest(
                    f"unknown role {role!r} (expected one of {', '.join(ROLES)})",
                    param=f"messages[{number}].role",
                )
            checked.append(Message(role, content))
        if not any(m.role == "user" and m.content.strip() for m in checked):
            raise InvalidRequest("the conversation needs a user message", param="messages")
        return cls(tuple(checked))

    @property
    def query(self) -> str:
        """The question being asked: the last user message."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")

    def render(self, context: str | None) -> list[dict[str, Any]]:
        """The messages for the model: the context as a system message placed after the
        client's own system messages, before the conversation."""
        rendered = [{"role": m.role, "content": m.content} for m in self.messages]
        if context:
            at = 0
            while at < len(rendered) and rendered[at]["role"] in ("system", "developer"):
                at += 1
            rendered.insert(at, {"role": "system", "content": context})
        return rendered
