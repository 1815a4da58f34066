"""What to send and when: a priority mix, prompts, and open-loop (Poisson) or closed-loop
arrivals, bounded in time and count."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

PRIORITIES = ("premium", "standard", "batch")
WORDS = [
    "latency",
    "queue",
    "token",
    "cache",
    "batch",
    "budget",
    "alert",
    "replica",
    "prefill",
    "decode",
    "shard",
    "scheduler",
    "gradient",
    "baseline",
    "incident",
    "window",
    "quantile",
    "exemplar",
    "trace",
    "span",
    "pager",
]


def parse_mix(text: str) -> dict[str, float]:
    """ "premium=0.2,standard=0.5,batch=0.3" -> normalised weights; ValueError names the fault."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        if not sep or name not in PRIORITIES:
            raise ValueError(f"--mix: {part!r} is not PRIORITY=WEIGHT ({', '.join(PRIORITIES)})")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise ValueError(f"--mix: weight {weight!r} is not a number") from None
        if mix[name] < 0:
            raise ValueError("--mix: weights must be >= 0")
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("--mix: at least one positive weight")
    return {k: v / total for k, v in mix.items()}


@dataclass(frozen=True)
class Workload:
    mix: dict[str, float]
    prompt_words: int = 32
    max_tokens: int = 64
    rate: float | None = None  # requests/s, open loop (Poisson); None: closed loop
    concurrency: int = 8  # closed loop: requests in flight at once
    duration: float = 30.0
    max_requests: int | None = None
    seed: int = 0
    # A time-varying rate, as (period seconds, high-rate multiplier, high share of the period):
    # the demo's periodic overload.
    burst: tuple[float, float, float] | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rng", random.Random(self.seed))

    def priority(self) -> str:
        names = list(self.mix)
        return self._rng.choices(names, weights=[self.mix[n] for n in names])[0]

    def prompt(self, index: int) -> str:
        words = [self._rng.choice(WORDS) for _ in range(self.prompt_words)]
        return f"Request {index}: " + " ".join(words)

    def rate_at(self, elapsed: float) -> float:
        assert self.rate is not None
        if self.burst is None:
            return self.rate
        period, factor, share = self.burst
        return self.rate * factor if (elapsed % period) < period * share else self.rate

    def open_loop_gaps(self) -> Iterator[float]:
        """Seconds until each next arrival (Poisson at the rate of the moment)."""
        elapsed = 0.0
        while True:
            gap = self._rng.expovariate(self.rate_at(elapsed))
            elapsed += gap
            yield gap
