"""Coding agents' requests, in the shapes Claude Code 2.1 and Codex 0.171 send them
(recorded from real runs against the gateway, trimmed): accepted and answered on the
fake upstream's gateway. The agents themselves are run by hand (README)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import FakeUpstream, GatewayProcess
from tests.e2e.clients import bearer, last_upstream_request
from tests.e2e.conftest import STANDARD_KEY

MODEL = "fake-model"
SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}}


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def test_a_claude_code_request(fake_gateway: GatewayProcess, fake_upstream: FakeUpstream) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 32000,  # over the key's cap: lowered to it
        "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code."},
                   {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nLinux",
                                            "cache_control": {"type": "ephemeral"}}]},
        ],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": SCHEMA,
                   "defer_loading": True}],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
    }  # fmt: skip
    response = httpx.post(
        f"{fake_gateway.url}/v1/messages?beta=true", json=body, timeout=30,
        headers={"x-api-key": STANDARD_KEY, "anthropic-version": "2023-06-01",
                 "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    names = [name for name, _ in events(response.text)]
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"
    sent = last_upstream_request(fake_upstream)
    assert sent["max_tokens"] == 4096  # the standard tier's cap
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system"]
    assert sent["messages"][2]["content"] == "# Environment\nLinux"
    assert sent["tools"][0]["function"]["name"] == "Bash"
    for dropped in ("thinking", "context_management", "output_config"):
        assert dropped not in sent


def test_a_codex_request(fake_gateway: GatewayProcess, fake_upstream: FakeUpstream) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "store": False,
        "instructions": None,
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer",
             "content": [{"type": "input_text", "text": "You are a coding agent."}]},
            {"type": "message", "id": "msg_2", "role": "user",
             "content": [{"type": "input_text", "text": "say hi"}]},
        ],
        "tools": [{"type": "function", "name": "exec_command", "description": "Run",
                   "strict": False, "parameters": SCHEMA}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0a1b",
        "client_metadata": {"session_id": "0a1b", "turn_id": "0c2d"},
    }  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(
        f"{fake_gateway.url}/v1/responses", json=body, timeout=30,
        headers={**bearer(), "accept": "text/event-stream", "originator": "codex_exec"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    kinds = [payload["type"] for _, payload in events(response.text)]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    sent = last_upstream_request(fake_upstream)
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "client_metadata" not in sent
