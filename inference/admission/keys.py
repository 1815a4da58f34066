"""API keys from a file: which tenant a key belongs to, the highest priority it may ask for,
and its rate.

    keys:
      - key: sk-acme-0123456789abcdef      # or key_sha256: <hex digest of the key>
        tenant: acme
        max_priority: standard              # premium | standard | batch
        rate: 5                              # requests per second (token bucket)
        burst: 10                            # default: max(1, rate)

Only SHA-256 digests are kept in memory, and a presented key is looked up by its digest. The
tenant name comes from this file, never from a client, so it may appear in spans and logs.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inference.admission.decision import annotate_tenant
from inference.admission.rate_limit import TokenBucket
from inference.admission.refusals import (
    PriorityNotAllowedError,
    RateLimitedError,
    UnauthorizedError,
)
from inference.admission.retry_after import RetryAdvisor
from inference.backend import Priority

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{64}")
MAX_KEYS = 10_000


@dataclass(frozen=True)
class Tenant:
    name: str
    max_priority: Priority


@dataclass
class _Entry:
    tenant: Tenant
    bucket: TokenBucket | None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(
        self,
        entries: Mapping[str, _Entry],
        clock: Callable[[], float] = time.monotonic,
        advisor: RetryAdvisor | None = None,
    ) -> None:
        self._entries = dict(entries)
        self._advisor = advisor or RetryAdvisor(clock)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: str | Path, clock: Callable[[], float] = time.monotonic) -> KeyRing:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        items = raw.get("keys") if isinstance(raw, dict) else None
        if not isinstance(items, list) or not items:
            raise ValueError(f"{path}: expected a non-empty `keys:` list")
        if len(items) > MAX_KEYS:
            raise ValueError(f"{path}: more than {MAX_KEYS} keys")
        entries: dict[str, _Entry] = {}
        for i, item in enumerate(items):
            try:
                hashed, entry = _entry(item, clock)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: key #{i + 1}: {exc}") from None
            if hashed in entries:
                raise ValueError(f"{path}: key #{i + 1} is listed twice")
            entries[hashed] = entry
        return cls(entries, clock)

    def _entry(self, presented: str | None) -> _Entry | None:
        return self._entries.get(digest(presented)) if presented else None

    def known(self, presented: str | None) -> bool:
        """Whether the key is in the file (for endpoints without a priority, /v1/models)."""
        return self._entry(presented) is not None

    def admit(self, presented: str | None, priority: Priority) -> Tenant:
        """The key's tenant, or a refusal: 401 unknown, 403 priority above the key's, 429 over
        its rate (with the wait the bucket needs)."""
        entry = self._entry(presented)
        if entry is None:
            raise UnauthorizedError(
                "a valid API key is required (Authorization: Bearer <key>)"
                if not presented
                else "the API key is not valid"
            )
        tenant = entry.tenant
        annotate_tenant(tenant.name)
        if priority.rank < tenant.max_priority.rank:
            raise PriorityNotAllowedError(
                f"this API key may ask for {tenant.max_priority.value} priority at most, "
                f"not {priority.value}"
            )
        if entry.bucket is not None:
            wait = entry.bucket.take()
            if wait is not None:
                raise RateLimitedError(
                    f"this API key is over its rate of {entry.bucket.rate:g} requests/s",
                    retry_after=self._advisor.refused(("key", tenant.name), wait),
                )
        return tenant


def _entry(item: Any, clock: Callable[[], float]) -> tuple[str, _Entry]:
    if not isinstance(item, dict):
        raise TypeError("each key is a mapping")
    unknown = set(item) - {"key", "key_sha256", "tenant", "max_priority", "rate", "burst"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    if ("key" in item) == ("key_sha256" in item):
        raise ValueError("give exactly one of key, key_sha256")
    if "key" in item:
        key = str(item["key"])
        if len(key) < 16:
            raise ValueError("a key must be at least 16 characters")
        hashed = digest(key)
    else:
        hashed = str(item["key_sha256"]).lower()
        if not _HEX.fullmatch(hashed):
            raise ValueError("key_sha256 must be 64 hex digits")
    tenant = str(item["tenant"])
    if not _TENANT.fullmatch(tenant):
        raise ValueError(f"tenant {tenant!r} must match {_TENANT.pattern}")
    max_priority = Priority(str(item.get("max_priority", Priority.STANDARD.value)))
    bucket = None
    if item.get("rate") is not None:
        rate = float(item["rate"])
        bucket = TokenBucket(rate, float(item.get("burst", max(1.0, rate))), clock)
    return hashed, _Entry(Tenant(tenant, max_priority), bucket)
