"""Plain data passed between the gateway's layers. Nothing here knows the ORM."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(slots=True)
class ChatRequest:
    """A chat request validated against its model's spec (gateway/spec.py builds it).

    `body` is the client's JSON object after validation: fields the page says to strip for this
    model (temperature/top_p on reasoning models) are already gone; Omixa-only fields
    (`show_thinking`) and `stream_options` are removed (adapters decide what goes upstream).
    """

    model: str
    body: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    max_output_tokens: int | None = None  # what the client asked for (None: it did not say)
    default_max_output_tokens: int = 4096  # the model's default, for families that require a limit
    reasoning_effort: str | None = None
    # The model spec's thinking-token budget for that effort (None: no effort asked, or no budgets)
    reasoning_budget: int | None = None
    show_thinking: bool = False
    service_tier: str | None = None
    estimated_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    """One provider key as the hot path sees it: decrypted secret, resolved timeouts."""

    id: int
    name: str
    model_slug: str
    provider: str
    endpoint_type: str
    base_url: str
    deployment: str
    api_key: str = field(repr=False)
    api_version: str = ""
    priority: int = 100
    supports_priority: bool = False
    store: bool = False  # Responses routes: the provider may retain responses (`store: true` upstream)
    reasoning: bool = False
    connect_timeout: float = 5.0
    first_byte_timeout: float = 300.0
    idle_timeout: float = 120.0


@dataclass(slots=True)
class Usage:
    """Tokens in disjoint buckets: prompt = input + cached_input + cache_write; reasoning ⊂ output."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    service_tier: str = ""
    estimated: bool = False

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def as_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class ErrorKind(StrEnum):
    CLIENT = "client"  # the request's fault: passed on as 400, no failover
    AUTH = "auth"  # 401/403: key out of rotation until an operator looks, fail over
    QUOTA = "quota"  # provider quota exhausted (insufficient_quota): out of rotation, fail over
    NOT_FOUND = "not_found"  # deployment missing: fail over
    RATE_LIMITED = "rate_limited"  # 429 (and 408): fail over, counts toward cooldown
    SERVER = "server"  # 5xx or a malformed answer: fail over, counts toward cooldown
    TIMEOUT = "timeout"  # connect/first-byte/idle timeout: fail over, counts toward cooldown
    CONNECT = "connect"  # connection refused/reset: fail over, counts toward cooldown


@dataclass(slots=True)
class UpstreamError(Exception):
    kind: ErrorKind
    message: str
    status: int | None = None
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class RequestRejected(Exception):
    """The request cannot be served as sent: a 400 in OpenAI's shape naming `param`."""

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = "invalid_value", status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
