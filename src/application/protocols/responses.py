"""OpenAI's Responses API over a chat-completions upstream: a Responses request (with
the conversation of its ``previous_response_id``) translated into a chat completion
request; the completion (or its chunks) translated back into a Response object (or the
Responses stream of events).

Pure: mappings in, mappings out. Types are validated at the edge; what cannot be
translated is refused here with the field named."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from domain.errors import InvalidRequest, UnsupportedParameter

_TEXT_PARTS = ("input_text", "output_text", "text")
_ROLES = ("user", "assistant", "system", "developer")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of parts", param=where)
    texts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("input_image", "input_file", "input_audio"):
            raise UnsupportedParameter(
                f"{where}[{number}] is an {kind} part: the gateway's models take text only",
                param=f"{where}[{number}]",
            )
        if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise InvalidRequest(
                f"{where}[{number}] must be a text part ({{'type': 'input_text', 'text': ...}})",
                param=f"{where}[{number}]",
            )
        texts.append(part["text"])
    return "".join(texts)


def input_messages(items: str | Sequence[Any]) -> list[dict[str, Any]]:
    """``input`` as chat messages: consecutive function calls become one assistant
    message's ``tool_calls``, a ``function_call_output`` a ``tool`` message."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for number, item in enumerate(items):
        where = f"input[{number}]"
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise InvalidRequest(
                    f"{where}.role must be one of {', '.join(_ROLES)}", param=f"{where}.role"
                )
            text = _content_text(item.get("content", ""), f"{where}.content")
            messages.append({"role": "system" if role == "developer" else role, "content": text})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            arguments = item.get("arguments", "")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise InvalidRequest(f"{where} needs a string `call_id` and `name`", param=where)
            if not isinstance(arguments, str):
                raise InvalidRequest(
                    f"{where}.arguments must be a JSON string", param=f"{where}.arguments"
                )
            call = {"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments}}  # fmt: skip
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise InvalidRequest(f"{where}.call_id must be a string", param=f"{where}.call_id")
            text = _content_text(output, f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # the upstream's own reasoning is not sent back
        else:
            raise InvalidRequest(
                f"{where}.type {kind!r} is not supported; use message, function_call or "
                "function_call_output",
                param=f"{where}.type",
            )
    return messages


def _response_format(text: Mapping[str, Any] | None) -> dict[str, Any] | None:
    form = (text or {}).get("format")
    if not isinstance(form, Mapping) or form.get("type", "text") == "text":
        return None
    if form["type"] == "json_object":
        return {"type": "json_object"}
    if form["type"] == "json_schema":
        if not isinstance(form.get("schema"), Mapping) or not form.get("name"):
            raise InvalidRequest(
                "text.format of type json_schema needs a `name` and a `schema`",
                param="text.format",
            )
        schema = {"name": form["name"], "schema": form["schema"]}
        for name in ("strict", "description"):
            if form.get(name) is not None:
                schema[name] = form[name]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        f"text.format.type {form['type']!r} is not one of text, json_object, json_schema",
        param="text.format.type",
    )


def chat_request(
    request: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A Responses request as a chat completion request. ``history``: the chat
    messages of the previous response's conversation (its instructions not included,
    as OpenAI does)."""
    messages: list[dict[str, Any]] = []
    if request.get("instructions"):
        messages.append({"role": "system", "content": request["instructions"]})
    messages.extend(dict(m) for m in history)
    messages.extend(input_messages(request["input"]))
    body: dict[str, Any] = {"model": request.get("model"), "messages": messages}
    if request.get("max_output_tokens") is not None:
        body["max_tokens"] = request["max_output_tokens"]
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if request.get(name) is not None:
            body[name] = request[name]
    tools = request.get("tools")
    if tools:
        converted = []
        for number, tool in enumerate(tools):
            if tool.get("type") != "function":
                raise UnsupportedParameter(
                    f"tools[{number}] is a {tool.get('type')!r} tool; only function tools "
                    "are supported",
                    param=f"tools[{number}].type",
                )
            if not tool.get("name"):
                raise InvalidRequest(
                    f"tools[{number}] needs a `name`", param=f"tools[{number}].name"
                )
            function = {"name": tool["name"], "parameters": tool.get("parameters") or {}}
            for name in ("description", "strict"):
                if tool.get(name) is not None:
                    function[name] = tool[name]
            converted.append({"type": "function", "function": function})
        body["tools"] = converted
    choice = request.get("tool_choice")
    if isinstance(choice, str):
        body["tool_choice"] = choice
    elif isinstance(choice, Mapping):
        if choice.get("type") != "function" or not choice.get("name"):
            raise InvalidRequest(
                "tool_choice must be auto, none, required or a function by name",
                param="tool_choice",
            )
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    response_format = _response_format(request.get("text"))
    if response_format is not None:
        body["response_format"] = response_format
    if request.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def prompt_texts(body: Mapping[str, Any]) -> list[str]:
    """Every text of the translated request, for admission."""
    texts = [str(m.get("content") or "") for m in body["messages"]]
    for message in body["messages"]:
        for call in message.get("tool_calls") or ():
            texts.append(str(call["function"]["arguments"]))
    for tool in body.get("tools") or ():
        texts.append(json.dumps(tool, separators=(",", ":")))
    return texts


def usage_of(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _text_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def envelope(
    request: Mapping[str, Any], response_id: str, model: str, created_at: int
) -> dict[str, Any]:
    """A Response object without its output (``status`` in progress)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True),
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": list(request.get("tools") or []),
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": dict(request.get("metadata") or {}),
    }


def _finished(response: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
    return response


def response(
    request: Mapping[str, Any],
    completion: Mapping[str, Any],
    response_id: str,
    model: str,
    created_at: int,
) -> dict[str, Any]:
    """A chat completion as a Response object."""
    out = envelope(request, response_id, completion.get("model") or model, created_at)
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], Mapping) else {}
    answer = choice.get("message") or {}
    if answer.get("content"):
        out["output"].append(_text_item(new_id("msg"), answer["content"]))
    for call in answer.get("tool_calls") or ():
        function = call.get("function") or {}
        out["output"].append(
            _call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name") or "",
                function.get("arguments") or "",
            )
        )
    out["usage"] = usage_of(completion.get("usage"))
    return _finished(out, choice.get("finish_reason"))


def output_messages(output: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A response's output as the chat messages that continue its conversation."""
    text = "".join(
        part.get("text", "")
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or ()
    )
    calls = [
        {"id": item["call_id"], "type": "function",
         "function": {"name": item["name"], "arguments": item["arguments"]}}
        for item in output
        if item.get("type") == "function_call"
    ]  # fmt: skip
    if not text and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def conversation(
    history: Sequence[Mapping[str, Any]],
    request: Mapping[str, Any],
    output: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """What a stored response keeps for the next one: the chat messages of its
    conversation (its instructions left out, as OpenAI does) and of its output."""
    return [*(dict(m) for m in history), *input_messages(request["input"]),
            *output_messages(output)]  # fmt: skip


Event = dict[str, Any]


class ResponseStream:
    """Chat completion chunks in, the Responses stream events out: ``start()``,
    ``feed(chunk)`` per chunk, ``finish()`` (its last event is ``response.completed``,
    or ``response.incomplete`` when the answer was cut by ``max_output_tokens``)."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self._sequence = 0
        self._text: list[str] | None = None
        self._text_id = ""
        self._calls: dict[int, dict[str, Any]] = {}
        self._open_call: int | None = None
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> Event:
        self._sequence += 1
        return {"type": kind, "sequence_number": self._sequence - 1, **fields}

    def _snapshot(self) -> dict[str, Any]:
        # The items in ``output`` are not changed once in it: copying the list will do.
        return {**self.response, "output": list(self.response["output"])}

    def start(self) -> list[Event]:
        return [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]

    @property
    def _index(self) -> int:
        return len(self.response["output"])

    def _close_text(self) -> list[Event]:
        if self._text is None:
            return []
        text = "".join(self._text)
        self._text = None
        index = self._index
        item = _text_item(self._text_id, text)
        part = item["content"][0]
        self.response["output"].append(item)
        return [
            self._event("response.output_text.done", item_id=self._text_id, output_index=index,
                        content_index=0, text=text, logprobs=[]),
            self._event("response.content_part.done", item_id=self._text_id,
                        output_index=index, content_index=0, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]  # fmt: skip

    def _close_call(self) -> list[Event]:
        if self._open_call is None:
            return []
        call = self._calls[self._open_call]
        self._open_call = None
        index = self._index
        item = _call_item(call["id"], call["call_id"], call["name"], call["arguments"])
        self.response["output"].append(item)
        return [
            self._event("response.function_call_arguments.done", item_id=call["id"],
                        output_index=index, arguments=call["arguments"]),
            self._event("response.output_item.done", output_index=index, item=item),
        ]  # fmt: skip

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._text is None:
                    events += self._close_call()
                    self._text, self._text_id = [], new_id("msg")
                    item = _text_item(self._text_id, "", "in_progress")
                    item["content"] = []
                    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    events += [
                        self._event("response.output_item.added", output_index=self._index,
                                    item=item),
                        self._event("response.content_part.added", item_id=self._text_id,
                                    output_index=self._index, content_index=0, part=part),
                    ]  # fmt: skip
                self._text.append(text)
                events.append(
                    self._event("response.output_text.delta", item_id=self._text_id,
                                output_index=self._index, content_index=0, delta=text,
                                logprobs=[])
                )  # fmt: skip
            for call in delta.get("tool_calls") or ():
                number = int(call.get("index", 0))
                function = call.get("function") or {}
                if number != self._open_call:
                    events += self._close_text() + self._close_call()
                    state = {"id": new_id("fc"), "call_id": call.get("id") or new_id("call"),
                             "name": function.get("name") or "", "arguments": ""}  # fmt: skip
                    self._calls[number] = state
                    self._open_call = number
                    item = {**_call_item(state["id"], state["call_id"], state["name"], ""),
                            "status": "in_progress"}  # fmt: skip
                    events.append(
                        self._event("response.output_item.added", output_index=self._index,
                                    item=item)
                    )  # fmt: skip
                arguments = function.get("arguments")
                if isinstance(arguments, str) and arguments:
                    state = self._calls[number]
                    state["arguments"] += arguments
                    events.append(
                        self._event("response.function_call_arguments.delta",
                                    item_id=state["id"], output_index=self._index,
                                    delta=arguments)
                    )  # fmt: skip
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def finish(self) -> list[Event]:
        events = self._close_text() + self._close_call()
        self.response["usage"] = usage_of(self._usage)
        _finished(self.response, self._finish)
        kind = (
            "response.completed"
            if self.response["status"] == "completed"
            else ("response.incomplete")
        )
        events.append(self._event(kind, response=self._snapshot()))
        return events
