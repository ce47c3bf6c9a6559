"""Chat completion requests and results, as the OpenAI API shapes them.

The gateway forwards a client's request to the upstream untouched apart from the model
it routes to, so a request is kept as the mapping the client sent; the bounds the
gateway itself enforces are declared here, once, and used by the wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# OpenAI's ranges: a value outside them is refused before anything is sent upstream.
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.0, 1.0)
PENALTY_RANGE = (-2.0, 2.0)  # frequency_penalty, presence_penalty
TOP_LOGPROBS_RANGE = (0, 20)
LOGIT_BIAS_RANGE = (-100.0, 100.0)
N_MIN = 1  # the most a key may ask for is its tier's (TierPolicy.max_n)
STOP_MAX_SEQUENCES = 4
STOP_MAX_CHARS = 256  # each stop sequence
MAX_TOKENS_MIN = 1
# An int32: what upstreams' OpenAI servers accept, and no number a client means.
MAX_TOKENS_MAX = 2**31 - 1
# /v1/chat's latency_budget_ms: the widest GATEWAY_CHAT_MAX_BUDGET_MS may allow (the
# setting, checked per request, is the bound in force).
LATENCY_BUDGET_RANGE_MS = (100.0, 600_000.0)

# The seed's default model name: requests naming it (or no model) go to the configured
# default model unless an upstream really serves a model of that name.
SEED_DEFAULT_MODEL = "llama-3.3-8b-instruct"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """An OpenAI chat completion request (already validated at the edge)."""

    body: Mapping[str, Any]

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) and model else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def routed_to(self, model: str) -> dict[str, Any]:
        """The body to send upstream: the client's, with the routed model name."""
        body = dict(self.body)
        body["model"] = model
        return body


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished completion: the upstream's JSON body, relayed as is, plus what the
    gateway reads from it (the model that answered and the token usage)."""

    body: bytes
    model: str
    usage: Usage | None
    content: str | None = None  # the first choice's message
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A model the gateway routes, as ``/v1/models`` lists it."""

    id: str
    owned_by: str
    created: int = 0
