"""Anthropic's Messages API over an OpenAI chat-completions upstream: the request
translated into a chat completion request, the completion (or its stream of chunks)
translated back into a Message (or Anthropic's stream of events).

Pure: mappings in, mappings out. The request is already validated for types at the
edge; what cannot be translated (an image, a document) is refused here with the
field named."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from domain.errors import InvalidRequest, UnsupportedParameter

# OpenAI's finish_reason → Anthropic's stop_reason.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def _text_of(blocks: str | Sequence[Any], where: str) -> str:
    """A ``system`` or ``tool_result`` content: a string, or text blocks joined."""
    if isinstance(blocks, str):
        return blocks
    parts = []
    for number, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(
                f"{where}[{number}] must be a text block ({{'type': 'text', 'text': ...}})",
                param=f"{where}[{number}]",
            )
        parts.append(block["text"])
    return "\n".join(parts)


def _arguments(value: Any) -> str:
    return json.dumps(value if isinstance(value, Mapping) else {}, separators=(",", ":"))


def _message(number: int, role: str, content: str | Sequence[Any]) -> list[dict[str, Any]]:
    """One Anthropic message as OpenAI messages: a user's tool results become ``tool``
    messages (before the user's text), an assistant's tool uses its ``tool_calls``."""
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        where = f"messages[{number}].content[{index}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}.text must be a string", param=f"{where}.text")
            texts.append(text)
        elif kind in ("image", "document"):
            raise UnsupportedParameter(
                f"{where} is an {kind} block: the gateway's models take text only",
                param=where,
            )
        elif kind == "tool_use" and role == "assistant":
            tool_id, name = block.get("id"), block.get("name")
            if not isinstance(tool_id, str) or not isinstance(name, str):
                raise InvalidRequest(f"{where} needs a string `id` and `name`", param=where)
            tool_calls.append(
                {
                    "id": tool_id,
                    "type": "function",
                    "function": {"name": name, "arguments": _arguments(block.get("input"))},
                }
            )
        elif kind == "tool_result" and role == "user":
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str):
                raise InvalidRequest(
                    f"{where}.tool_use_id must be a string", param=f"{where}.tool_use_id"
                )
            result = block.get("content", "")
            if not isinstance(result, str | list):
                raise InvalidRequest(
                    f"{where}.content must be a string or text blocks", param=f"{where}.content"
                )
            text = _text_of(result, f"{where}.content")
            if block.get("is_error") is True:
                text = f"Error: {text}"
            results.append({"role": "tool", "tool_call_id": tool_id, "content": text})
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # the upstream's own reasoning is not sent back
        else:
            raise InvalidRequest(
                f"{where}: a {role} message cannot hold a block of type {kind!r}",
                param=f"{where}.type",
            )
    out = list(results)
    if role == "assistant":
        if texts or tool_calls:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            out.append(message)
    elif texts or not results:
        out.append({"role": "user", "content": "\n".join(texts)})
    return out


def chat_messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conversation (the system prompt first) as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    system = request.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system, "system")})
    for number, message in enumerate(request["messages"]):
        if message["role"] == "system":
            where = f"messages[{number}].content"
            messages.append({"role": "system", "content": _text_of(message["content"], where)})
            continue
        messages.extend(_message(number, message["role"], message["content"]))
    return messages


def chat_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages request as a chat completion request (the bound included as sent:
    the caller replaces it with what admission grants)."""
    body: dict[str, Any] = {
        "model": request["model"],
        "messages": chat_messages(request),
        "max_tokens": request["max_tokens"],
    }
    for name in ("temperature", "top_p"):
        if request.get(name) is not None:
            body[name] = request[name]
    if request.get("stop_sequences"):
        body["stop"] = list(request["stop_sequences"])
    tools = request.get("tools")
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    **({"description": tool["description"]} if tool.get("description") else {}),
                    "parameters": tool.get("input_schema") or {"type": "object"},
                },
            }
            for tool in tools
        ]
    choice = request.get("tool_choice")
    if choice:
        kind = choice["type"]
        if kind == "tool":
            if not choice.get("name"):
                raise InvalidRequest(
                    "tool_choice of type `tool` needs the tool's `name`", param="tool_choice.name"
                )
            body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            body["tool_choice"] = _TOOL_CHOICES[kind]
        if choice.get("disable_parallel_tool_use") and tools:
            body["parallel_tool_calls"] = False
    user = (request.get("metadata") or {}).get("user_id")
    if user:
        body["user"] = user
    if request.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def prompt_texts(request: Mapping[str, Any]) -> list[str]:
    """Every text of the request, for admission and token counting."""
    texts = [str(m.get("content") or "") for m in chat_messages(request)]
    for tool in request.get("tools") or ():
        texts.append(json.dumps(tool, separators=(",", ":")))
    return texts


def _input(arguments: Any) -> Any:
    """A tool call's arguments (a JSON string) as the tool_use block's input."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def usage_of(usage: Mapping[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }


def message(completion: Mapping[str, Any], model: str, id_: str | None = None) -> dict[str, Any]:
    """A chat completion as an Anthropic Message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], Mapping) else {}
    answer = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if answer.get("content"):
        content.append({"type": "text", "text": answer["content"]})
    for call in answer.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                "name": function.get("name") or "",
                "input": _input(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    return {
        "id": id_ or message_id(),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or model,
        "content": content,
        "stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(completion.get("usage")),
    }


Event = tuple[str, dict[str, Any]]


class MessageStream:
    """Chat completion chunks in, Anthropic's stream events out: ``start()`` once,
    ``feed(chunk)`` per chunk, ``finish()`` at the end. Text becomes a text block,
    each tool call a tool_use block whose arguments stream as ``input_json_delta``."""

    def __init__(self, model: str, id_: str | None = None) -> None:
        self.id = id_ or message_id()
        self.model = model
        self.stop_reason: str | None = None
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self._index = -1
        self._open: str | None = None  # "text" or the open tool call's upstream index
        self._chars = 0

    def start(self) -> list[Event]:
        return [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": self.id,
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 0, "output_tokens": 0},
                    },
                },
            )
        ]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _begin(self, key: str, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._index += 1
        self._open = key
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )
        return events

    def _delta(self, delta: dict[str, Any]) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                        "delta": delta})  # fmt: skip

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self.usage = usage_of(usage)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open != "text":
                    events += self._begin("text", {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": text}))
                self._chars += len(text)
            for call in delta.get("tool_calls") or ():
                key = f"tool{call.get('index', 0)}"
                function = call.get("function") or {}
                if self._open != key:
                    events += self._begin(
                        key,
                        {
                            "type": "tool_use",
                            "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                            "name": function.get("name") or "",
                            "input": {},
                        },
                    )
                arguments = function.get("arguments")
                if isinstance(arguments, str) and arguments:
                    events.append(self._delta({"type": "input_json_delta",
                                               "partial_json": arguments}))  # fmt: skip
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return events

    def finish(self) -> list[Event]:
        events = self._close()
        usage = dict(self.usage)
        if not usage["output_tokens"] and self._chars:
            usage["output_tokens"] = max(1, self._chars // 4)  # the upstream said nothing
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events


# Anthropic's error types by HTTP status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error body for an answer of ``status``."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}
