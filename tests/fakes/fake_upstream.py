"""Fast fake OpenAI-compatible upstream for contract/e2e tests and load benchmarks.

Raw asyncio + a minimal HTTP/1.1 implementation (keep-alive by default,
``Connection: close`` honoured, Content-Length request bodies, chunked
streaming responses). Standard library only.

Run::

    python -m tests.fakes.fake_upstream --host 127.0.0.1 --port 0 \
        [--model fake-model] [--models fake-model,fake-model-2] \
        [--token-gap-ms 0] [--tokens 8]

It prints exactly one line ``READY <port>`` once listening.

Endpoints: ``GET /v1/models``, ``GET /health``, ``GET /_fake/stats``,
``POST /_fake/reset`` (zeroes the stats) and ``POST /v1/chat/completions``.
``requests`` in the stats counts POST /v1/chat/completions requests only
(``http_requests`` counts everything).

Test directives -- if the content (a string) of the LAST message starts with:

``__status_<code>__``  reply with that HTTP status and an OpenAI error body
                       (type ``server_error`` for 5xx, else ``invalid_request_error``).
``__garbage__``        200 with body ``this is not json`` (non-streaming) or an
                       event stream carrying ``data: {not json}`` then close.
``__sleep_<ms>__``     wait <ms> milliseconds, then answer normally.
``__drop__``           close the connection without answering.
``__slow_stream__``    50 tokens, 200 ms apart (ignores --tokens, --token-gap-ms
                       and max_tokens); non-streaming requests get the answer
                       after the same total delay (10 s).
``__echo__``           the answer text is the compact JSON of the request body.
``__say__<text>``      the answer text is <text> (chat completions).
``__cut_stream__``     a streamed answer of a few tokens ending with ``[DONE]`` but no
                       finish_reason (as llama_cpp.server ends an interrupted one).
``__tool_call__``      (with ``tools`` in the request) the answer calls the first tool
                       with the arguments ``{"city": "Paris"}``: ``tool_calls``, finish
                       reason ``tool_calls``; streamed as OpenAI streams a call (id and
                       name first, the arguments in two pieces).
``__finish_<reason>__`` a normal answer whose finish_reason is <reason>
                       (``content_filter``...).

A request whose LAST message is a ``tool`` message is answered
``tool result: <its content>``.

``POST /v1/completions`` (legacy text completions): the same words for a ``prompt``,
``choices[].text``, streamed as ``text_completion`` chunks; ``__echo__`` and
``__status_<code>__`` as above (on the prompt). ``POST /v1/responses``: the same words
as a Responses object (``input`` a string; ``__echo__`` and ``__status_<code>__`` on it),
streamed as the Responses events. ``--chat-only``: those routes are 404s, as on an
upstream without them.

``--strict``: bodies a plain llama.cpp-like server rejects are rejected by what they
hold, whatever the directive: a role other than system/user/assistant/tool/function
gets a 500 whose text is an exception's (a file path, a key-like token, a traceback);
a ``content`` that is a list gets FastAPI's 422; ``frequency_penalty`` or
``presence_penalty`` outside [-2, 2] gets a 400 naming it.

``POST /_fake/outage`` with ``{"status": 500}``: every chat request gets that status
until ``{"status": 0}`` (or ``/_fake/reset``): an upstream that is broken, not a request.

``POST /v1/embeddings``: ``EMBEDDING_DIMENSION`` floats per input, the same for the
same text, scaled (not unit length) as a real server may answer. ``__status_<code>__``
and ``__drop__`` as above (as any input). ``embedding_requests`` in the stats counts
them. ``POST /_fake/embeddings_outage`` with ``{"status": 503, "requests": 2}``: the next
2 embedding requests get that status (``requests`` 0 or absent: until told otherwise).

Normal answers are ``--tokens`` words "tok0 tok1 ..." capped by ``max_tokens``
(or ``max_completion_tokens``); finish_reason is "length" when capped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import time
import zlib
from http import HTTPStatus
from typing import Any

MAX_HEAD_BYTES = 1 << 20
SLOW_TOKENS, SLOW_GAP_S = 50, 0.2
EMBEDDING_DIMENSION = 16
_CLOSE = b"Connection: close\r\n"
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def _response(status: int, body: bytes, keep: bool, ctype: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        status,
        _reason(status),
        ctype,
        len(body),
    )
    return head + (b"" if keep else _CLOSE) + b"\r\n" + body


def _error(
    status: int,
    message: str,
    keep: bool,
    etype: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    return _response(status, _dumps(body).encode(), keep)


def _directive_int(content: str, prefix: str) -> int | None:
    """Parse ``<prefix><digits>__`` at the start of ``content``."""
    digits = content[len(prefix) :].split("__", 1)[0]
    return int(digits) if digits.isdigit() else None


def _stream_head(keep: bool, chunked: bool = True) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        + (b"Transfer-Encoding: chunked\r\n" if chunked else b"")
        + (b"" if keep else _CLOSE)
        + b"\r\n"
    )


class FakeUpstream:
    """Per-server state: configuration, precomputed bytes and counters."""

    def __init__(
        self,
        models: list[str],
        token_gap_ms: float,
        tokens: int,
        strict: bool = False,
        chat_only: bool = False,
    ) -> None:
        self.models = list(models)
        self.chat_only = chat_only
        self.strict = strict
        self.outage = 0
        self.gap_s = max(token_gap_ms, 0) / 1000.0
        self.tokens = max(tokens, 0)
        self.ids = itertools.count(1)
        self.stats: dict[str, Any] = {}
        self.reset_stats()
        n = max(self.tokens, SLOW_TOKENS)
        self.words = [f"tok{i}" for i in range(n)]
        self.deltas = [_dumps({"content": f"tok{i} "}).encode() for i in range(n)]
        listing = {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in self.models
            ],
        }
        self.static: dict[tuple[str, str], bytes] = {
            ("GET", "/v1/models"): _dumps(listing).encode(),
            ("GET", "/health"): b'{"status":"ok"}',
        }

    def reset_stats(self) -> None:
        self.outage = 0
        self.embeddings_outage = self.embeddings_outage_left = 0
        self.stats.update(
            embedding_requests=0,
            requests=0,
            streams_started=0,
            streams_completed=0,
            streams_cancelled=0,
            last_request=None,
            last_headers={},
            http_requests=0,
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one connection until close / error."""
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Handle one request; return True to keep the connection open."""
        head = (await reader.readuntil(b"\r\n\r\n")).lstrip(b"\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            writer.write(_error(400, "malformed request line", False))
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        conn = headers.get("connection", "").lower()
        keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        if "transfer-encoding" in headers:
            writer.write(_error(501, "chunked request bodies are not supported", False))
            return False
        length = int(headers.get("content-length") or 0)
        if length and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        path = target.split("?", 1)[0]
        self.stats["http_requests"] += 1
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(reader, writer, headers, body, keep)
        if method == "POST" and path == "/v1/embeddings":
            return await self._embeddings(writer, body, keep)
        if method == "POST" and path == "/v1/completions" and not self.chat_only:
            return await self._text(reader, writer, headers, body, keep)
        if method == "POST" and path == "/v1/responses" and not self.chat_only:
            return await self._responses(writer, headers, body, keep)
        static = self.static.get((method, path))
        if static is not None:
            writer.write(_response(200, static, keep))
        elif method == "GET" and path == "/_fake/stats":
            writer.write(_response(200, _dumps(self.stats).encode(), keep))
        elif method == "POST" and path == "/_fake/reset":
            self.reset_stats()
            writer.write(_response(200, b'{"status":"ok"}', keep))
        elif method == "POST" and path == "/_fake/outage":
            self.outage = int(json.loads(body or b"{}").get("status") or 0)
            writer.write(_response(200, b'{"status":"ok"}', keep))
        elif method == "POST" and path == "/_fake/embeddings_outage":
            asked = json.loads(body or b"{}")
            self.embeddings_outage = int(asked.get("status") or 0)
            self.embeddings_outage_left = int(asked.get("requests") or 0)
            writer.write(_response(200, b'{"status":"ok"}', keep))
        else:
            writer.write(_error(404, f"no route for {method} {path}", keep))
        await writer.drain()
        return keep

    async def _chat(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        body: bytes,
        keep: bool,
    ) -> bool:
        st = self.stats
        st["requests"] += 1
        try:
            req = json.loads(body)
        except ValueError as exc:
            req = exc
        if not isinstance(req, dict):
            writer.write(_error(400, f"invalid JSON body: {req}", keep))
            await writer.drain()
            return keep
        st["last_request"], st["last_headers"] = req, headers
        model = req.get("model")
        if not isinstance(model, str) or model not in self.models:
            writer.write(
                _error(404, f"model {model} not found", keep, param="model", code="model_not_found")
            )
            await writer.drain()
            return keep
        messages = req.get("messages")
        messages = (
            [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        )
        refusal = self._refusal(req, messages, keep)
        if refusal is not None:
            writer.write(refusal)
            await writer.drain()
            return keep
        last = messages[-1].get("content") if messages else None
        directive = last if isinstance(last, str) and last.startswith("__") else ""
        stream = req.get("stream") is True
        n, gap, text, finish, slow = self.tokens, self.gap_s, None, "stop", False
        if directive.startswith("__status_") and (code := _directive_int(directive, "__status_")):
            if 200 <= code <= 599:
                etype = "server_error" if code >= 500 else "invalid_request_error"
                writer.write(_error(code, f"fake upstream error {code}", keep, etype))
                await writer.drain()
                return keep
        elif directive.startswith("__garbage__"):
            if stream:
                writer.write(_stream_head(False, chunked=False) + b"data: {not json}\n\n")
                await writer.drain()
                return False
            writer.write(_response(200, b"this is not json", keep))
            await writer.drain()
            return keep
        elif (
            directive.startswith("__sleep_")
            and (ms := _directive_int(directive, "__sleep_")) is not None
        ):
            await asyncio.sleep(ms / 1000.0)
        elif directive.startswith("__drop__"):
            return False
        elif directive.startswith("__slow_stream__"):
            n, gap, slow = SLOW_TOKENS, SLOW_GAP_S, True
        elif directive.startswith("__echo__"):
            text = _dumps(req)
        elif directive.startswith("__say__"):
            text = directive[len("__say__") :]
        elif directive.startswith("__cut_stream__"):
            n, finish = min(n, 3), ""
        elif directive.startswith("__finish_"):
            finish = directive[len("__finish_") :].split("__", 1)[0] or "stop"
        tool_call = None
        if directive.startswith("__tool_call__") and isinstance(req.get("tools"), list):
            first_tool = req["tools"][0] if req["tools"] else {}
            function = first_tool.get("function") if isinstance(first_tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            tool_call = {
                "id": f"call_fake{next(self.ids)}",
                "type": "function",
                "function": {"name": name or "tool", "arguments": '{"city": "Paris"}'},
            }
            finish = "tool_calls"
        if messages and messages[-1].get("role") == "tool":
            text = f"tool result: {messages[-1].get('content')}"
        max_tokens = req.get("max_completion_tokens", req.get("max_tokens"))
        if (
            not slow
            and text is None
            and tool_call is None
            and isinstance(max_tokens, int)
            and not isinstance(max_tokens, bool)
            and max_tokens < n
        ):
            n, finish = max(max_tokens, 0), "length"
        prompt = sum(
            len(m["content"].split()) for m in messages if isinstance(m.get("content"), str)
        )
        completion = len(text.split()) if text is not None else n
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        cid, created = f"chatcmpl-fake{next(self.ids)}", int(time.time())
        if tool_call is not None:
            text = ""
            completion = 3
            usage["completion_tokens"] = completion
            usage["total_tokens"] = prompt + completion
        if stream:
            deltas = [_dumps({"content": text}).encode()] if text is not None else self.deltas[:n]
            if tool_call is not None:
                arguments = tool_call["function"]["arguments"]
                head = {
                    "index": 0,
                    "id": tool_call["id"],
                    "type": "function",
                    "function": {"name": tool_call["function"]["name"], "arguments": ""},
                }
                pieces = [
                    {"index": 0, "function": {"arguments": part}}
                    for part in (arguments[:5], arguments[5:])
                ]
                deltas = [_dumps({"tool_calls": [call]}).encode() for call in [head, *pieces]]
            include_usage = (
                isinstance(req.get("stream_options"), dict)
                and req["stream_options"].get("include_usage") is True
            )
            return await self._stream(
                reader,
                writer,
                keep,
                cid,
                created,
                model,
                deltas,
                gap,
                finish,
                usage if include_usage else None,
            )
        if slow:
            await asyncio.sleep(n * gap)
        payload = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text if text is not None else " ".join(self.words[:n]),
                        **({"content": None, "tool_calls": [tool_call]} if tool_call else {}),
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }
        writer.write(_response(200, _dumps(payload).encode(), keep))
        await writer.drain()
        return keep

    async def _text(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        body: bytes,
        keep: bool,
    ) -> bool:
        """``POST /v1/completions``: the chat answer's words as ``text``."""
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            writer.write(_error(400, "invalid JSON body", keep))
            await writer.drain()
            return keep
        self.stats["text_requests"] = self.stats.get("text_requests", 0) + 1
        self.stats["last_request"], self.stats["last_headers"] = req, headers
        model = req.get("model")
        if not isinstance(model, str) or model not in self.models:
            writer.write(_error(404, f"model {model} not found", keep, param="model"))
            await writer.drain()
            return keep
        prompt = req.get("prompt")
        first = prompt[0] if isinstance(prompt, list) and prompt else prompt
        first = first if isinstance(first, str) else ""
        if first.startswith("__status_") and (code := _directive_int(first, "__status_")):
            writer.write(_error(code, f"fake upstream error {code}", keep))
            await writer.drain()
            return keep
        n, finish = self.tokens, "stop"
        max_tokens = req.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens < n:
            n, finish = max(max_tokens, 0), "length"
        text = _dumps(req) if first.startswith("__echo__") else " ".join(self.words[:n])
        completion = len(text.split())
        usage = {"prompt_tokens": len(first.split()), "completion_tokens": completion,
                 "total_tokens": len(first.split()) + completion}  # fmt: skip
        cid, created = f"cmpl-fake{next(self.ids)}", int(time.time())
        if req.get("stream") is True:
            self.stats["streams_started"] += 1
            writer.write(_stream_head(keep))
            base = {"id": cid, "object": "text_completion", "created": created, "model": model}
            pieces = [text] if first.startswith("__echo__") else [f"{w} " for w in self.words[:n]]
            events = [
                {**base, "choices": [{"index": 0, "text": p, "logprobs": None,
                                      "finish_reason": None}]}
                for p in pieces
            ]  # fmt: skip
            events.append({**base, "choices": [{"index": 0, "text": "", "logprobs": None,
                                                "finish_reason": finish}]})  # fmt: skip
            options = req.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage") is True:
                events.append({**base, "choices": [], "usage": usage})
            for i, payload in enumerate(events):
                if self.gap_s > 0 and i:
                    await asyncio.sleep(self.gap_s)
                data = b"data: " + _dumps(payload).encode() + b"\n\n"
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
            data = b"data: [DONE]\n\n"
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            await writer.drain()
            self.stats["streams_completed"] += 1
            return keep
        payload = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        writer.write(_response(200, _dumps(payload).encode(), keep))
        await writer.drain()
        return keep

    async def _embeddings(self, writer: asyncio.StreamWriter, body: bytes, keep: bool) -> bool:
        self.stats["embedding_requests"] += 1
        req = json.loads(body or b"{}")
        texts = req.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        if req.get("model") not in self.models:
            writer.write(_error(404, f"model {req.get('model')} not found", keep))
        elif self.embeddings_outage:
            status = self.embeddings_outage
            if self.embeddings_outage_left:
                self.embeddings_outage_left -= 1
                if not self.embeddings_outage_left:
                    self.embeddings_outage = 0
            writer.write(_error(status, "fake embeddings outage", keep, "server_error"))
        elif "__drop__" in texts:
            return False
        elif code := next(
            (_directive_int(t, "__status_") for t in texts if t.startswith("__status_")), None
        ):
            writer.write(_error(code, f"fake upstream error {code}", keep))
        else:
            data = [
                {"object": "embedding", "index": i, "embedding": self._vector(text)}
                for i, text in enumerate(texts)
            ]
            answer = {"object": "list", "model": req["model"], "data": data}
            writer.write(_response(200, _dumps(answer).encode(), keep))
        await writer.drain()
        return keep

    def _vector(self, text: str) -> list[float]:
        seed = zlib.crc32(text.encode())
        return [3.0 * (((seed >> i) & 0xFF) / 255.0 + 0.01 * i) for i in range(EMBEDDING_DIMENSION)]

    async def _responses(
        self, writer: asyncio.StreamWriter, headers: dict[str, str], body: bytes, keep: bool
    ) -> bool:
        """``POST /v1/responses``: the same words as a Responses object, or its event
        stream (``response.created`` ... ``response.completed``)."""
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            writer.write(_error(400, "invalid JSON body", keep))
            await writer.drain()
            return keep
        self.stats["responses_requests"] = self.stats.get("responses_requests", 0) + 1
        self.stats["last_request"], self.stats["last_headers"] = req, headers
        model = req.get("model")
        if not isinstance(model, str) or model not in self.models:
            writer.write(_error(404, f"model {model} not found", keep, param="model"))
            await writer.drain()
            return keep
        asked = req.get("input")
        first = asked if isinstance(asked, str) else ""
        if first.startswith("__status_") and (code := _directive_int(first, "__status_")):
            writer.write(_error(code, f"fake upstream error {code}", keep))
            await writer.drain()
            return keep
        n, status = self.tokens, "completed"
        bound = req.get("max_output_tokens")
        if isinstance(bound, int) and not isinstance(bound, bool) and bound < n:
            n, status = max(bound, 0), "incomplete"
        words = self.words[:n]
        text = _dumps(req) if first.startswith("__echo__") else " ".join(words)
        rid, created = f"resp_fake{next(self.ids)}", int(time.time())
        usage = {"input_tokens": len(first.split()), "output_tokens": len(text.split()),
                 "total_tokens": len(first.split()) + len(text.split())}  # fmt: skip
        part = {"type": "output_text", "text": text, "annotations": []}
        message = {"type": "message", "id": f"msg_{rid}", "status": "completed",
                   "role": "assistant", "content": [part]}  # fmt: skip
        response = {"id": rid, "object": "response", "created_at": created, "status": status,
                    "model": model, "output": [message], "usage": usage}  # fmt: skip
        if req.get("stream") is not True:
            writer.write(_response(200, _dumps(response).encode(), keep))
            await writer.drain()
            return keep
        self.stats["streams_started"] += 1
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        item = {**message, "status": "in_progress", "content": []}
        pieces = [text] if first.startswith("__echo__") else [f"{w} " for w in words]
        at = {"item_id": message["id"], "output_index": 0, "content_index": 0}
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": started}),
            ("response.output_item.added", {"output_index": 0, "item": item}),
            ("response.content_part.added", {**at, "part": {**part, "text": ""}}),
            *(("response.output_text.delta", {**at, "delta": p}) for p in pieces),
            ("response.output_text.done", {**at, "text": text}),
            ("response.content_part.done", {**at, "part": part}),
            ("response.output_item.done", {"output_index": 0, "item": message}),
            (f"response.{status}", {"response": response}),
        ]  # fmt: skip
        writer.write(_stream_head(keep))
        tokens_sent = 0
        for number, (kind, fields) in enumerate(events):
            if kind == "response.output_text.delta":
                if self.gap_s > 0 and tokens_sent:  # between tokens, as the chat stream
                    await asyncio.sleep(self.gap_s)
                tokens_sent += 1
            payload = _dumps({"type": kind, "sequence_number": number, **fields}).encode()
            data = b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        self.stats["streams_completed"] += 1
        return keep

    def _refusal(self, req: dict[str, Any], messages: list[Any], keep: bool) -> bytes | None:
        """The answer of an upstream in an outage, or of a strict one to a body it
        cannot take; None to answer normally."""
        if self.outage:
            return _error(self.outage, "fake upstream outage", keep, "server_error")
        if not self.strict:
            return None
        for number, message in enumerate(messages):
            role = message.get("role")
            if role not in ("system", "user", "assistant", "tool", "function"):
                text = (
                    f"unexpected role {role!r} in /opt/upstream/chat_format.py "
                    "(api_key=sk-upstream-secret-0123)\nTraceback (most recent call last):\n"
                    '  File "/opt/upstream/server.py", line 1, in handler'
                )
                return _error(500, text, keep, "internal_server_error")
            if isinstance(message.get("content"), list):
                detail = [{"type": "string_type", "loc": ["body", "messages", number,
                           "content"], "msg": "Input should be a valid string"}]  # fmt: skip
                return _response(422, _dumps({"detail": detail}).encode(), keep)
        for name in ("frequency_penalty", "presence_penalty"):
            value = req.get(name)
            if isinstance(value, int | float) and not -2 <= value <= 2:
                return _error(400, f"{name} must be between -2 and 2", keep, param=name)
        return None

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep: bool,
        cid: str,
        created: int,
        model: str,
        deltas: list[bytes],
        gap: float,
        finish: str,
        usage: dict[str, int] | None,
    ) -> bool:
        """Write an SSE stream, one HTTP chunk per event, draining after each."""
        prefix = (
            f'data: {{"id":{_dumps(cid)},"object":"chat.completion.chunk",'
            f'"created":{created},"model":{_dumps(model)},"choices":'
        ).encode()

        def event(delta: bytes, reason: bytes = b"null") -> bytes:
            return (
                prefix
                + b'[{"index":0,"delta":'
                + delta
                + b',"logprobs":null,"finish_reason":'
                + reason
                + b"}]}\n\n"
            )

        async def send(data: bytes) -> None:
            if reader.at_eof() or writer.is_closing():  # client went away
                raise ConnectionResetError("client disconnected")
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()

        self.stats["streams_started"] += 1
        try:
            writer.write(_stream_head(keep))
            await send(event(b'{"role":"assistant","content":""}'))
            for i, delta in enumerate(deltas):
                if gap > 0 and i:
                    await asyncio.sleep(gap)
                await send(event(delta))
            if finish:  # "" (a cut answer): no finish_reason, straight to [DONE]
                await send(event(b"{}", _dumps(finish).encode()))
            if usage is not None:
                await send(prefix + b'[],"usage":' + _dumps(usage).encode() + b"}\n\n")
            await send(b"data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, OSError):
            self.stats["streams_cancelled"] += 1
            return False
        self.stats["streams_completed"] += 1
        return keep


async def serve(
    host: str, port: int, models: list[str], token_gap_ms: float = 0.0, tokens: int = 8,
    strict: bool = False, chat_only: bool = False,
) -> asyncio.Server:  # fmt: skip
    """Start the fake upstream; the returned server is already listening."""
    fake = FakeUpstream(models, token_gap_ms, tokens, strict, chat_only)
    server = await asyncio.start_server(fake.handle, host, port, limit=MAX_HEAD_BYTES, backlog=1024)
    server.fake = fake  # type: ignore[attr-defined]  # in-process access to stats
    return server


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--model", default=None, help="model id (default fake-model)")
    p.add_argument("--models", default=None, help="comma-separated model ids")
    p.add_argument("--token-gap-ms", type=float, default=0.0)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--strict", action="store_true", help="reject bodies as llama.cpp would")
    p.add_argument("--chat-only", action="store_true", help="no /v1/completions route")
    return p.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    if args.model and args.model not in models:
        models.insert(0, args.model)
    models = models or ["fake-model"]
    server = await serve(
        args.host, args.port, models, args.token_gap_ms, args.tokens, args.strict, args.chat_only
    )
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(_parse_args(argv)))


if __name__ == "__main__":
    main()
