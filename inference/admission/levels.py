"""Degradation levels and per-priority service levels, as data.

A level says which priorities are shed, how far `max_tokens` is capped per priority, and how
much of the adaptive in-flight limit is used. The defaults follow the SRE book's ladder (shed
`batch` first, then `standard`, keep `premium`; cap tokens before refusing anybody); a
deployment may replace them with a JSON file (`--degradation-levels-file`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from inference.backend import Priority


@dataclass(frozen=True)
class Level:
    """One rung of the ladder; `number` 0 is normal service."""

    number: int
    name: str
    shed: frozenset[Priority] = frozenset()
    max_tokens: Mapping[Priority, int] = field(default_factory=dict)
    concurrency: float = 1.0  # share of the adaptive in-flight limit used at this level

    def cap(self, priority: Priority) -> int | None:
        return self.max_tokens.get(priority)


@dataclass(frozen=True)
class ServiceLevel:
    """What one priority class gets at every level.

    Each class has its own adaptive in-flight limit, learned from its own latencies and counting
    what it and the more important classes have in flight. `share`: where that limit starts
    and the most it grows to, as a fraction of the ceiling, so lower classes leave headroom for
    higher ones. `min_share`: the least it falls to, however far latency pushes it (premium's
    is the largest: shedding starts at the bottom). `max_waiting`: how many requests of this
    class and the ones above may already wait in the engine's queue for it to be admitted (a
    refusal is better than a place at the back of a queue; this needs no latency sample, so it
    acts from the first second of a burst). `timeout_s`: a request still running after this
    long (from arrival) is cancelled and its blocks freed.
    """

    share: float
    timeout_s: float
    max_tokens: int | None = None
    min_share: float = 0.0
    max_waiting: int = 4


@dataclass(frozen=True)
class Ladder:
    """The ordered levels, the service levels, and which level each alert `action` asks for."""

    levels: tuple[Level, ...]
    service: Mapping[Priority, ServiceLevel]
    action_levels: Mapping[str, int]

    def __post_init__(self) -> None:
        numbers = [lv.number for lv in self.levels]
        if numbers != list(range(len(numbers))) or not numbers:
            raise ValueError(f"levels must be numbered 0, 1, ... in order, got {numbers}")
        if self.levels[0].shed:
            raise ValueError("level 0 is normal service: it sheds nobody")
        if set(self.service) != set(Priority):
            raise ValueError("service levels must name every priority")
        for name, level in self.action_levels.items():
            if not 0 < level < len(self.levels):
                raise ValueError(f"action {name!r} asks for level {level}, which does not exist")
        for lv in self.levels:
            if not 0 < lv.concurrency <= 1:
                raise ValueError(f"level {lv.number}: concurrency must be in (0, 1]")
        for p, s in self.service.items():
            ok = 0 < s.share <= 1 and 0 <= s.min_share <= s.share and s.timeout_s > 0
            if not ok or s.max_waiting < 1:
                raise ValueError(
                    f"service level of {p}: share in (0, 1], min_share in [0, share], "
                    "timeout_s > 0, max_waiting >= 1"
                )

    @property
    def top(self) -> int:
        return len(self.levels) - 1

    def level(self, number: int) -> Level:
        return self.levels[max(0, min(number, self.top))]

    def max_tokens(self, number: int, priority: Priority) -> int | None:
        """The tighter of the class's own cap and the level's cap (None: uncapped)."""
        caps = (self.service[priority].max_tokens, self.level(number).cap(priority))
        present = [c for c in caps if c is not None]
        return min(present) if present else None


P, S, B = Priority.PREMIUM, Priority.STANDARD, Priority.BATCH

DEFAULT_LADDER = Ladder(
    levels=(
        Level(0, "normal"),
        Level(1, "shed batch, cap standard", frozenset({B}), MappingProxyType({S: 256})),
        Level(2, "shed standard too, cap harder", frozenset({B, S}), MappingProxyType({P: 512})),
        Level(
            3,
            "premium only, tight concurrency",
            frozenset({B, S}),
            MappingProxyType({P: 256}),
            concurrency=0.5,
        ),
    ),  # fmt: skip
    service=MappingProxyType(
        {
            # Premium's floor leaves its own TTFT gradient room to act: at a quarter of the
            # ceiling (twice the KV cache) it was the engine's whole running batch, so premium's
            # limit never held premium's own queue short, and overload became premium's wait.
            P: ServiceLevel(share=1.0, timeout_s=60.0, min_share=0.1, max_waiting=16),
            S: ServiceLevel(share=0.75, timeout_s=120.0, min_share=0.05, max_waiting=4),
            B: ServiceLevel(share=0.5, timeout_s=600.0, min_share=0.025, max_waiting=2),
        }
    ),
    # The spec's actions (alerts/spec.py `Action`): capping tokens is the first rung; shedding
    # goes one rung at a time up to standard; failures ask for the tight premium-only rung.
    action_levels=MappingProxyType(
        {"cap_tokens": 1, "shed_low_priority": 2, "tighten_concurrency": 3}
    ),
)


def load_ladder(path: str | Path) -> Ladder:
    """A ladder from JSON: {"levels": [{"name", "shed": [...], "max_tokens": {...},
    "concurrency"}], "service": {"premium": {"share", "timeout_s", "max_tokens"}}, "actions":
    {"cap_tokens": 1}}; an absent section keeps the default's."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a JSON object is expected")
    unknown = set(raw) - {"levels", "service", "actions"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    try:
        levels = DEFAULT_LADDER.levels
        if "levels" in raw:
            levels = tuple(_level(i, item) for i, item in enumerate(raw["levels"]))
        service = dict(DEFAULT_LADDER.service)
        for name, item in (raw.get("service") or {}).items():
            service[Priority(name)] = ServiceLevel(
                share=float(item["share"]),
                timeout_s=float(item["timeout_s"]),
                max_tokens=_opt_int(item.get("max_tokens")),
                min_share=float(item.get("min_share", 0.0)),
                max_waiting=int(item.get("max_waiting", 4)),
            )
        actions = dict(DEFAULT_LADDER.action_levels)
        actions.update({str(k): int(v) for k, v in (raw.get("actions") or {}).items()})
        return Ladder(levels, MappingProxyType(service), MappingProxyType(actions))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def _level(number: int, item: Mapping[str, Any]) -> Level:
    return Level(
        number=number,
        name=str(item.get("name", f"level {number}")),
        shed=frozenset(Priority(p) for p in item.get("shed", ())),
        max_tokens=MappingProxyType(
            {Priority(p): int(v) for p, v in (item.get("max_tokens") or {}).items()}
        ),
        concurrency=float(item.get("concurrency", 1.0)),
    )


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
