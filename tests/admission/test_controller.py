"""The degradation controller on an injected clock: each trigger moves the level, one rung per
dwell going up, one per (longer) cooldown going down, no flapping at a threshold, a manual pin,
and every change recorded with its reason."""

from __future__ import annotations

import pytest

from inference.admission.controller import ALERTMANAGER, LOCAL, Controller, Demand, Transition
from inference.admission.levels import DEFAULT_LADDER
from tests.admission.doubles import FakeClock

DWELL, COOLDOWN = 5.0, 60.0


def controller(clock: FakeClock) -> Controller:
    return Controller(DEFAULT_LADDER, dwell_s=DWELL, cooldown_s=COOLDOWN, clock=clock)


def shed(trigger: str = LOCAL, source: str = "InferwatchQueueWaitAboveBaseline") -> Demand:
    return Demand(trigger, "shed_low_priority", source, "p95 queue wait 2.5 s")


def run_for(c: Controller, clock: FakeClock, seconds: float, demands: list[Demand]) -> None:
    """The local loop: one step a second, handing the same demands each time (the first step
    is one second from now, so a dwell counted from it ends after `dwell + 1` steps)."""
    for _ in range(int(seconds)):
        clock.advance(1)
        c.set_demands(LOCAL, demands)


def test_a_demand_steps_up_one_rung_per_dwell_to_the_level_its_action_asks() -> None:
    clock = FakeClock()
    c = controller(clock)
    seen: list[Transition] = []
    c.add_listener(seen.append)
    c.set_demands(LOCAL, [shed()])
    assert c.level == 0  # not before the dwell
    run_for(c, clock, DWELL - 1, [shed()])
    assert c.level == 0
    run_for(c, clock, 1, [shed()])
    assert c.level == 1  # batch first ...
    run_for(c, clock, DWELL, [shed()])
    assert c.level == 2  # ... then standard: shed_low_priority asks for level 2
    run_for(c, clock, 10 * DWELL, [shed()])
    assert c.level == 2  # and no further
    assert [(t.from_level, t.to_level, t.direction, t.trigger) for t in seen] == [
        (0, 1, "up", LOCAL),
        (1, 2, "up", LOCAL),
    ]
    assert "InferwatchQueueWaitAboveBaseline (shed_low_priority" in seen[0].reason
    assert "p95 queue wait" in seen[0].reason


def test_recovery_one_rung_per_cooldown_once_demand_is_gone() -> None:
    clock = FakeClock()
    c = controller(clock)
    run_for(c, clock, 2 * DWELL + 1, [shed()])
    assert c.level == 2
    run_for(c, clock, COOLDOWN, [])
    assert c.level == 2  # the way down is slower than the way up
    run_for(c, clock, 1, [])
    assert c.level == 1
    run_for(c, clock, COOLDOWN, [])
    assert c.level == 0
    history = c.snapshot()["history"]
    assert [h["direction"] for h in history] == ["up", "up", "down", "down"]
    assert "for 60 s" in history[-1]["reason"] and history[-1]["trigger"] == LOCAL


def test_no_flapping_under_a_steady_signal_near_a_threshold() -> None:
    """An alert that comes and goes every other second (a signal hovering at its threshold)
    never holds for a whole dwell, so the level does not move at all; once up, the same
    hovering never stays away for a cooldown, so it does not come down and up again either."""
    clock = FakeClock()
    c = controller(clock)
    changes: list[Transition] = []
    c.add_listener(changes.append)
    for second in range(600):
        clock.advance(1)
        c.set_demands(LOCAL, [shed()] if second % 2 else [])
    assert changes == [] and c.level == 0

    run_for(c, clock, DWELL + 1, [shed()])  # a real breach: up one rung
    assert c.level == 1
    changes.clear()
    for second in range(600):
        clock.advance(1)
        c.set_demands(LOCAL, [] if second % 3 else [shed()])
    assert changes == [] and c.level == 1


def test_the_highest_demand_of_any_trigger_wins_and_is_credited() -> None:
    clock = FakeClock()
    c = controller(clock)
    c.set_demands(LOCAL, [Demand(LOCAL, "cap_tokens", "InferwatchKVCacheSaturated")])
    for _ in range(3 * int(DWELL)):
        clock.advance(1)
        c.set_demands(ALERTMANAGER, [Demand(ALERTMANAGER, "tighten_concurrency", "X")])
    assert c.level == 3
    assert {t["trigger"] for t in c.snapshot()["history"]} == {ALERTMANAGER}
    assert c.snapshot()["target"] == 3


def test_manual_override_pins_then_hands_back() -> None:
    clock = FakeClock()
    c = controller(clock)
    changes = c.override(3, "incident 42: protect premium")
    assert c.level == 3 and changes[0].trigger == "manual"
    assert changes[0].reason == "manual: incident 42: protect premium"
    run_for(c, clock, 10 * COOLDOWN, [])
    assert c.level == 3  # pinned: the triggers do not lower it
    c.override(None, "incident over")
    run_for(c, clock, COOLDOWN + 1, [])
    assert c.level == 2  # handed back: down by the cooldown, one rung at a time


def test_manual_override_expires() -> None:
    clock = FakeClock()
    c = controller(clock)
    c.override(1, "try level 1 for a minute", ttl_s=60)
    assert c.snapshot()["override"]["expires_in_seconds"] == 60
    clock.advance(61)
    c.tick()
    assert c.snapshot()["override"] is None and c.level == 1
    run_for(c, clock, COOLDOWN, [])
    assert c.level == 0


def test_override_outside_the_ladder_is_refused() -> None:
    c = controller(FakeClock())
    with pytest.raises(ValueError, match="0..3"):
        c.override(4, "too far")


def test_snapshot_says_level_reasons_triggers_and_since() -> None:
    clock = FakeClock()
    c = controller(clock)
    run_for(c, clock, DWELL + 1, [shed()])
    snap = c.snapshot()
    assert snap["level"] == 1 and snap["name"] == "shed batch, cap standard"
    assert snap["shed"] == ["batch"] and snap["max_tokens"] == {"standard": 256}
    assert snap["since"].endswith("Z") and snap["seconds_at_level"] == 0
    assert snap["reasons"][0]["alert"] == "InferwatchQueueWaitAboveBaseline"
    assert snap["triggers"][LOCAL]["demands"] == 1
    assert snap["triggers"][ALERTMANAGER]["updated_seconds_ago"] is None


def test_a_failing_listener_does_not_stop_the_others() -> None:
    clock = FakeClock()
    c = controller(clock)
    seen: list[int] = []

    def broken(_: Transition) -> None:
        raise RuntimeError("boom")

    c.add_listener(broken)
    c.add_listener(lambda t: seen.append(t.to_level))
    c.override(2, "test")
    assert seen == [2]
