"""The wire format of the other protocols the gateway speaks: OpenAI's legacy
completions, Anthropic's Messages API and OpenAI's Responses API. Validated strictly
(a wrong type is a 400 naming the field); Messages and Responses bodies are translated
field by field, so a field they do not know is refused rather than silently dropped."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from adapters.http.wire import (
    MaxTokens,
    Penalty,
    Stop,
    StopSequence,
    StreamOptions,
    Temperature,
    TopP,
)
from domain.chat import N_MIN

# --- POST /v1/completions -------------------------------------------------------------


class CompletionRequest(msgspec.Struct, omit_defaults=True):
    """OpenAI's legacy completion request. Parameters not listed are forwarded too."""

    # A string, strings, token ids or lists of token ids.
    prompt: str | list[str | int | list[int]]
    model: str | None = None
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: Stop | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, msgspec.Meta(ge=N_MIN)] | None = None
    echo: bool | None = None
    suffix: str | None = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logprobs: int | None = None
    user: str | None = None


class CompletionChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None


class CompletionUsage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TextCompletion(msgspec.Struct):
    """Relayed as the upstream sent it; this is its documented shape."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None


# --- POST /v1/messages (Anthropic) ----------------------------------------------------
AnthropicTemperature = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class AnthropicMessage(msgspec.Struct, forbid_unknown_fields=True):
    # ``system``: an instruction between turns (Claude Code sends them), text only.
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class AnthropicTool(msgspec.Struct, omit_defaults=True):
    """Fields beyond these (``defer_loading``, ``input_examples``, ``strict``: Claude
    Code sends them) are accepted and not forwarded."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    input_schema: dict[str, Any] = {}
    description: str | None = None
    type: str | None = None
    cache_control: dict[str, Any] | None = None


class AnthropicToolChoice(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class AnthropicMetadata(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    user_id: str | None = None


class AnthropicThinking(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Accepted (clients send it) and not forwarded: the upstream's model thinks or not."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    display: str | None = None


class MessagesRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Anthropic's Messages request (``POST /v1/messages``)."""

    model: str
    messages: Annotated[list[AnthropicMessage], msgspec.Meta(min_length=1)]
    max_tokens: MaxTokens
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[StopSequence] | None = None
    stream: bool = False
    temperature: AnthropicTemperature | None = None
    top_p: TopP | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    metadata: AnthropicMetadata | None = None
    thinking: AnthropicThinking | None = None
    service_tier: str | None = None
    # Accepted (Claude Code sends them) and not forwarded: Anthropic's own controls.
    context_management: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class CountTokensRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /v1/messages/count_tokens``: a Messages request without the answer's bounds."""

    model: str
    messages: Annotated[list[AnthropicMessage], msgspec.Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    thinking: AnthropicThinking | None = None
    context_management: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class AnthropicUsage(msgspec.Struct):
    input_tokens: int
    output_tokens: int


class AnthropicMessageOut(msgspec.Struct):
    """Anthropic's Message object."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: AnthropicUsage


class TokenCount(msgspec.Struct):
    input_tokens: int


class AnthropicErrorDetail(msgspec.Struct):
    type: str
    message: str


class AnthropicError(msgspec.Struct):
    """Anthropic's error body: every refusal on ``/v1/messages``."""

    type: Literal["error"]
    error: AnthropicErrorDetail


# --- POST /v1/responses (OpenAI) ------------------------------------------------------
class ResponsesTool(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A function tool (the only kind translated; another type is a 400)."""

    type: str
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesText(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``format``: ``{"type": "text" | "json_object" | "json_schema", ...}``."""

    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """OpenAI's Responses request (``POST /v1/responses``)."""

    input: str | list[dict[str, Any]]
    model: str | None = None
    instructions: str | None = None
    max_output_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: ResponsesText | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    # Accepted and not forwarded: what a chat-completions upstream has no word for.
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    client_metadata: dict[str, Any] | None = None  # Codex sends it


class ResponseUsage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ResponseObject(msgspec.Struct):
    """OpenAI's Response object (its main fields)."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    model: str
    output: list[dict[str, Any]]
    usage: ResponseUsage | None = None


class ResponseDeleted(msgspec.Struct):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True
