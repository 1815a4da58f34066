"""The degradation controller: one level for the whole service, moved by demands.

Triggers (the in-process evaluator, the Alertmanager webhook) each hand over their current set
of demands; a demand's alert `action` asks for a level (`Ladder.action_levels`). The level
steps up one rung once a higher demand has held for `dwell_s`, and down one rung once every
demand has been below it for the longer `cooldown_s` (hysteresis): a signal that hovers at a
threshold leaves the level where it is instead of flapping. A manual override pins the level
until it is cleared or expires. Every change is recorded with its reason and handed to the
listeners (metrics, the log line). The clock is injected, so tests drive time by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inference.admission.levels import Ladder

log = logging.getLogger(__name__)

LOCAL, ALERTMANAGER, MANUAL = "local", "alertmanager", "manual"
TRIGGERS: tuple[str, ...] = (LOCAL, ALERTMANAGER, MANUAL)
UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Demand:
    """One active alert asking for `action`; `source` is the alert's name."""

    trigger: str
    action: str
    source: str
    detail: str = ""
    since: float = 0.0  # controller clock
    frozen: bool = False  # kept although its notifications stopped (the Watchdog is silent)


@dataclass(frozen=True)
class Transition:
    at: float  # controller clock
    wall: float  # epoch seconds, for people
    from_level: int
    to_level: int
    trigger: str
    reason: str

    @property
    def direction(self) -> str:
        return UP if self.to_level > self.from_level else DOWN


@dataclass
class _Override:
    level: int
    reason: str
    until: float | None


@dataclass
class _State:
    level: int = 0
    changed_at: float = 0.0
    changed_wall: float = field(default_factory=time.time)
    holder: str = LOCAL  # the trigger whose demand holds the level (credited when it falls)
    above_since: float | None = None
    below_since: float | None = None


class Controller:
    """Thread-safe: the evaluator thread, the event loop and the admin API all call it."""

    def __init__(
        self,
        ladder: Ladder,
        *,
        dwell_s: float = 5.0,
        cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        history: int = 50,
    ) -> None:
        if dwell_s < 0 or cooldown_s < dwell_s:
            raise ValueError("need 0 <= dwell <= cooldown (the way down is the slower one)")
        self.ladder = ladder
        self.dwell_s = dwell_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._state = _State(changed_at=clock(), changed_wall=wall())
        self._demands: dict[str, list[Demand]] = {}
        self._updated: dict[str, float] = {}
        self._override: _Override | None = None
        self._history: deque[Transition] = deque(maxlen=history)
        self._listeners: list[Callable[[Transition], None]] = []

    @property
    def level(self) -> int:
        return self._state.level

    def add_listener(self, listener: Callable[[Transition], None]) -> None:
        self._listeners.append(listener)

    def set_demands(self, trigger: str, demands: list[Demand]) -> list[Transition]:
        """Replace what `trigger` asks for now, then re-decide."""
        if trigger not in TRIGGERS or trigger == MANUAL:
            raise ValueError(f"unknown trigger {trigger!r}")
        with self._lock:
            self._demands[trigger] = list(demands)
            self._updated[trigger] = self._clock()
        return self.tick()

    def override(
        self, level: int | None, reason: str, ttl_s: float | None = None
    ) -> list[Transition]:
        """Pin the level (at once, no dwell), or with None hand it back to the triggers, which
        then lower it no sooner than one cooldown from now."""
        with self._lock:
            now = self._clock()
            changes: list[Transition] = []
            if level is None:
                self._override = None
                self._state.changed_at = now
                self._state.above_since = self._state.below_since = None
            else:
                if not 0 <= level <= self.ladder.top:
                    raise ValueError(f"level must be in 0..{self.ladder.top}")
                until = None if ttl_s is None else now + ttl_s
                self._override = _Override(level, reason, until)
                if level != self._state.level:
                    changes.append(self._move(level, MANUAL, f"manual: {reason}", now))
        self._announce(changes)
        return changes

    def tick(self) -> list[Transition]:
        """Re-decide at the current time (the local loop calls this every second)."""
        with self._lock:
            changes = self._decide(self._clock())
        self._announce(changes)
        return changes

    def _decide(self, now: float) -> list[Transition]:
        override = self._override
        if override is not None and override.until is not None and now >= override.until:
            self._override = None
            self._state.changed_at = now
            override = None
        if override is not None:
            return []
        state = self._state
        target, top = self._target()
        if target > state.level:
            state.below_since = None
            if state.above_since is None:
                state.above_since = now
            held = now - state.above_since >= self.dwell_s
            if held and now - state.changed_at >= self.dwell_s:
                assert top is not None
                detail = f": {top.detail}" if top.detail else ""
                reason = f"{top.source} ({top.action}, via {top.trigger}) asks for level {target}"
                state.above_since = now
                return [self._move(state.level + 1, top.trigger, reason + detail, now)]
        elif target < state.level:
            state.above_since = None
            if state.below_since is None:
                state.below_since = now
            quiet = now - state.below_since >= self.cooldown_s
            if quiet and now - state.changed_at >= self.cooldown_s:
                reason = f"nothing asked for more than level {target} for {self.cooldown_s:g} s"
                state.below_since = now
                return [self._move(state.level - 1, state.holder, reason, now)]
        else:
            state.above_since = state.below_since = None
        return []

    def _target(self) -> tuple[int, Demand | None]:
        best, top = 0, None
        for demands in self._demands.values():
            for demand in demands:
                wanted = self.ladder.action_levels.get(demand.action, 0)
                if wanted > best:
                    best, top = wanted, demand
        return best, top

    def _move(self, to: int, trigger: str, reason: str, now: float) -> Transition:
        state = self._state
        change = Transition(now, self._wall(), state.level, to, trigger, reason)
        state.level = to
        state.changed_at = now
        state.changed_wall = change.wall
        if change.direction == UP:
            state.holder = trigger
        self._history.append(change)
        return change

    def _announce(self, changes: list[Transition]) -> None:
        for change in changes:
            log.warning(
                "degradation level changed",
                extra={
                    "fields": {
                        "from_level": change.from_level,
                        "to_level": change.to_level,
                        "direction": change.direction,
                        "trigger": change.trigger,
                        "reason": change.reason,
                    }
                },
            )
            for listener in self._listeners:
                try:
                    listener(change)
                except Exception:  # a broken listener must not stop the next one
                    log.exception("degradation listener failed")

    def seconds_until_relief(self) -> float:
        """The earliest the level could fall one rung: the rest of the cooldown (or of a manual
        pin's lifetime). A lower bound for a shed class's Retry-After."""
        with self._lock:
            now = self._clock()
            if self._override is not None:
                until = self._override.until
                return self.cooldown_s if until is None else max(0.0, until - now)
            start = max(self._state.changed_at, self._state.below_since or now)
            return max(0.0, start + self.cooldown_s - now)

    def snapshot(self) -> dict[str, Any]:
        """What `GET /admin/degradation` shows: level, why, who asks for what, since when."""
        with self._lock:
            now, wall = self._clock(), self._wall()
            state = self._state
            level = self.ladder.level(state.level)
            demands = [d for ds in self._demands.values() for d in ds]
            target, _ = self._target()
            override = self._override
            return {
                "level": state.level,
                "name": level.name,
                "since": _iso(state.changed_wall),
                "seconds_at_level": round(now - state.changed_at, 3),
                "target": target,
                "shed": sorted(p.value for p in level.shed),
                "max_tokens": {p.value: v for p, v in level.max_tokens.items()},
                "concurrency": level.concurrency,
                "dwell_seconds": self.dwell_s,
                "cooldown_seconds": self.cooldown_s,
                "override": None
                if override is None
                else {
                    "level": override.level,
                    "reason": override.reason,
                    "expires_in_seconds": None
                    if override.until is None
                    else round(override.until - now, 3),
                },
                "reasons": [_demand_json(d, now, wall) for d in demands],
                "triggers": {
                    t: {
                        "demands": len(self._demands.get(t, [])),
                        "updated_seconds_ago": round(now - self._updated[t], 3)
                        if t in self._updated
                        else None,
                    }
                    for t in (LOCAL, ALERTMANAGER)
                },
                "history": [_transition_json(t) for t in self._history],
            }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _demand_json(d: Demand, now: float, wall: float) -> dict[str, Any]:
    return {
        "trigger": d.trigger,
        "alert": d.source,
        "action": d.action,
        "detail": d.detail,
        "since": _iso(wall - (now - d.since)),
        "frozen": d.frozen,
    }


def _transition_json(t: Transition) -> dict[str, Any]:
    return {
        "at": _iso(t.wall),
        "from": t.from_level,
        "to": t.to_level,
        "direction": t.direction,
        "trigger": t.trigger,
        "reason": t.reason,
    }
