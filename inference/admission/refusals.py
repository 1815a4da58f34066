"""Admission's refusals: each a `RejectedError` with its own reason (the fixed vocabulary of
`inferwatch_request_rejections_total`), HTTP status and error code. A refusal with no
`retry_after` can never succeed as sent, and the API says so (`x-should-retry: false`)."""

from __future__ import annotations

from inference.backend import RejectedError

SHED = "shed"
CONCURRENCY_LIMIT = "concurrency_limit"
RATE_LIMITED = "rate_limited"
CIRCUIT_OPEN = "circuit_open"
DEADLINE_EXCEEDED = "deadline_exceeded"
INVALID_API_KEY = "invalid_api_key"
PRIORITY_NOT_ALLOWED = "priority_not_allowed"
QUEUE_FULL = "queue_full"
# Every reason admission may give (the metric definitions must list each of them).
REASONS: tuple[str, ...] = (
    SHED, CONCURRENCY_LIMIT, RATE_LIMITED, CIRCUIT_OPEN, DEADLINE_EXCEEDED, INVALID_API_KEY,
    PRIORITY_NOT_ALLOWED,
)  # fmt: skip


class ShedError(RejectedError):
    """The degradation level sheds this priority."""

    reason, status, code = SHED, 503, "shed"


class ConcurrencyLimitError(RejectedError):
    """The adaptive in-flight limit of this priority is reached."""

    reason, status, code = CONCURRENCY_LIMIT, 503, "concurrency_limit"


class RateLimitedError(RejectedError):
    """The API key is over its rate."""

    reason, status, code = RATE_LIMITED, 429, "rate_limit_exceeded"


class CircuitOpenError(RejectedError):
    """The engine has been failing; new work waits for the breaker's trial calls."""

    reason, status, code = CIRCUIT_OPEN, 503, "circuit_open"


class DeadlineExceededError(RejectedError):
    """The request ran past its class's deadline and was cancelled (its KV blocks freed)."""

    reason, status, code = DEADLINE_EXCEEDED, 503, "deadline_exceeded"


class UnauthorizedError(RejectedError):
    """No API key, or one the key file does not know."""

    reason, status, code = INVALID_API_KEY, 401, "invalid_api_key"


class PriorityNotAllowedError(RejectedError):
    """The key may not ask for this priority."""

    reason, status, code = PRIORITY_NOT_ALLOWED, 403, "priority_not_allowed"
