"""The upstream part's settings: which OpenAI-compatible servers (vLLM) to serve through, and
how they are watched. With no `--upstream`, the built-in engine serves."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UpstreamConfig:
    upstream: tuple[str, ...] = field(
        default=(),
        metadata={"help": "base URL of an OpenAI-compatible server (vLLM) to serve through "
                  "instead of the built-in engine; repeat the flag (or comma-separate the "
                  "variable) for several"},
    )  # fmt: skip
    upstream_model: str | None = field(
        default=None,
        metadata={"help": "the upstreams' served model name (default: the first of the first "
                  "reachable upstream's /v1/models)"},
    )  # fmt: skip
    upstream_prompt: str = field(
        default="token_ids",
        metadata={"help": "how the prompt is sent: token_ids (vLLM: exactly the ids tokenised "
                  "here) or text (decoded back, for upstreams that take only text; exact where "
                  "decoding gives back the text)", "choices": ("token_ids", "text")},
    )  # fmt: skip
    upstream_priority: bool = field(
        default=False,
        metadata={"help": "send each request's priority to the upstream as vLLM's `priority` "
                  "(premium 0, standard 1, batch 2; the upstream must run with "
                  "--scheduling-policy priority)"},
    )  # fmt: skip
    upstream_poll_seconds: float = field(
        default=0.5,
        metadata={"help": "how often each upstream's /health and /metrics are read (its queue "
                  "figures and its health)"},
    )  # fmt: skip
    upstream_eject_failures: int = field(
        default=2, metadata={"help": "consecutive failed checks that take an upstream out"}
    )
    upstream_connect_timeout: float = field(
        default=2.0, metadata={"help": "seconds to connect to an upstream"}
    )
    upstream_read_timeout: float = field(
        default=300.0, metadata={"help": "longest silence of an upstream within one answer"}
    )
    upstream_retries: int = field(
        default=2,
        metadata={"help": "other upstreams tried for a request whose upstream failed before "
                  "its first token"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        for url in self.upstream:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"--upstream {url!r}: not an http(s) URL")
        if self.upstream_poll_seconds <= 0:
            raise ValueError("--upstream-poll-seconds must be > 0")
        if self.upstream_eject_failures < 1 or self.upstream_retries < 0:
            raise ValueError("--upstream-eject-failures must be >= 1, --upstream-retries >= 0")
