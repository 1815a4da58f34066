"""The Alertmanager trigger on an injected clock: version 4 payloads, idempotency, resolution,
leases, and the freeze while the Watchdog is silent too."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.alertmanager import WATCHDOG
from alerts.spec import Action
from inference.admission.controller import Controller
from inference.admission.levels import DEFAULT_LADDER
from inference.admission.notifications import (
    ACCEPTED,
    DUPLICATE,
    AlertmanagerTrigger,
    InvalidNotification,
    parse,
)
from tests.admission.doubles import FakeClock

LEASE = 600.0
STARTS = "2026-05-01T10:00:00.123456789Z"


def alert(
    name: str = "InferwatchQueueWaitAboveBaseline",
    status: str = "firing",
    action: str | None = Action.SHED_LOW_PRIORITY.value,
    fingerprint: str = "a1b2c3d4e5f60718",
    starts: str = STARTS,
) -> dict[str, Any]:
    labels = {"alertname": name, "model": "m1", "severity": "warning", "basis": "baseline"}
    if action is not None:
        labels["action"] = action
    return {
        "status": status, "labels": labels, "annotations": {"summary": "p95 queue wait high"},
        "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint,
    }  # fmt: skip


def payload(*alerts: dict[str, Any], group: str = '{}:{alertname="X"}') -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4", "groupKey": group, "truncatedAlerts": 0, "status": status,
        "receiver": "service-webhook", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "alerts": list(alerts),
    }  # fmt: skip


def trigger(clock: FakeClock) -> AlertmanagerTrigger:
    return AlertmanagerTrigger(
        DEFAULT_LADDER.action_levels, lease_s=LEASE, watchdog_timeout_s=LEASE, clock=clock
    )


def test_every_spec_action_is_understood_by_the_ladder() -> None:
    assert {a.value for a in Action} <= set(DEFAULT_LADDER.action_levels)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"version": "3", "groupKey": "g", "alerts": [alert()]},
        {"version": "4", "groupKey": "", "alerts": [alert()]},
        {"version": "4", "groupKey": "g", "alerts": []},
        {"version": "4", "groupKey": "g", "alerts": [{**alert(), "status": "gone"}]},
        {"version": "4", "groupKey": "g", "alerts": [{**alert(), "fingerprint": "../x"}]},
        {"version": "4", "groupKey": "g", "alerts": [{**alert(), "startsAt": "yesterday"}]},
        {"version": "4", "groupKey": "g", "alerts": [{**alert(), "labels": {"a": 1}}]},
    ],
)
def test_malformed_payloads_are_refused(body: Any) -> None:
    with pytest.raises(InvalidNotification):
        parse(body)


def test_a_duplicate_is_counted_and_not_applied_twice() -> None:
    clock = FakeClock()
    t = trigger(clock)
    assert t.receive(payload(alert())) == ACCEPTED
    first = t.demands()
    clock.advance(10)
    assert t.receive(payload(alert())) == DUPLICATE  # a retry, or the 5 m repeat
    assert t.demands() == first  # same demand, same since: nothing applied again
    assert first[0].action == "shed_low_priority" and first[0].source.endswith("Baseline")
    assert first[0].detail == "p95 queue wait high (basis baseline)"


def test_resolved_lets_the_demand_go_and_the_level_falls_after_the_cooldown() -> None:
    clock = FakeClock()
    t = trigger(clock)
    c = Controller(DEFAULT_LADDER, dwell_s=0, cooldown_s=60, clock=clock)
    t.receive(payload(alert(action=Action.CAP_TOKENS.value)))
    c.set_demands("alertmanager", t.demands())
    assert c.level == 1
    assert t.receive(payload(alert(action=Action.CAP_TOKENS.value, status="resolved"))) == ACCEPTED
    assert t.demands() == []
    c.set_demands("alertmanager", t.demands())
    clock.advance(59)
    c.tick()
    assert c.level == 1
    clock.advance(1)
    c.tick()
    assert c.level == 0


def resolved(starts: str, ends: str) -> dict[str, Any]:
    return {**alert(status="resolved", starts=starts), "endsAt": ends}


def test_a_flapping_alert_resolved_under_its_earlier_starts_at_lets_go() -> None:
    """Fired at 10:00, resolved, fired again at 10:01: Alertmanager may send the final
    resolution with the first startsAt (merged); it resolved after 10:01, so it ends it."""
    t = trigger(FakeClock())
    t.receive(payload(alert(starts="2026-05-01T10:00:00Z")))
    t.receive(payload(alert(starts="2026-05-01T10:01:00.5Z")))
    assert len(t.demands()) == 1
    t.receive(payload(resolved("2026-05-01T10:00:00Z", "2026-05-01T10:03:00.123456789Z")))
    assert t.demands() == []


def test_a_stale_resolution_of_an_earlier_episode_leaves_the_new_one_asking() -> None:
    t = trigger(FakeClock())
    t.receive(payload(alert(starts="2026-05-01T10:01:00Z")))
    t.receive(payload(resolved("2026-05-01T10:00:00Z", "2026-05-01T10:00:40Z")))  # before 10:01
    assert len(t.demands()) == 1
    t.receive(payload(resolved("2026-05-01T10:01:00Z", "0001-01-01T00:00:00Z")))  # its own
    assert t.demands() == []


def test_an_alert_not_heard_within_its_lease_stops_asking() -> None:
    clock = FakeClock()
    t = trigger(clock)
    t.receive(payload(alert()))
    clock.advance(LEASE - 1)
    assert len(t.demands()) == 1
    clock.advance(2)
    assert t.demands() == []


def test_frozen_while_the_watchdog_is_silent_too() -> None:
    """Prometheus died: its alerts resolve by timeout and the Watchdog stops. The demand stays,
    frozen, instead of letting the level relax; once the Watchdog is back it may go."""
    clock = FakeClock()
    t = trigger(clock)
    t.receive(payload(alert(name=WATCHDOG, action=None, fingerprint="00ff")))
    t.receive(payload(alert()))
    clock.advance(30)
    t.receive(payload(alert(status="resolved")))  # by timeout; the Watchdog's follows
    t.receive(payload(alert(name=WATCHDOG, action=None, fingerprint="00ff", status="resolved")))
    demands = t.demands()
    assert len(demands) == 1 and demands[0].frozen
    assert t.snapshot()["watchdog"] == "silent"
    clock.advance(10 * LEASE)
    assert len(t.demands()) == 1  # still frozen: nobody can tell it is over
    t.receive(
        payload(
            alert(name=WATCHDOG, action=None, fingerprint="00ff", starts="2026-05-01T11:00:00Z")
        )
    )
    assert t.snapshot()["watchdog"] == "heard"
    assert t.demands() == []


def test_notifications_that_stop_while_the_watchdog_is_overdue_freeze_too() -> None:
    clock = FakeClock()
    t = trigger(clock)
    t.receive(payload(alert(name=WATCHDOG, action=None, fingerprint="00ff")))
    t.receive(payload(alert()))
    clock.advance(LEASE + 1)  # neither the alert's repeat nor the Watchdog came
    assert [d.frozen for d in t.demands()] == [True]


def test_a_watchdog_never_heard_is_not_taken_for_silence() -> None:
    clock = FakeClock()
    t = trigger(clock)
    t.receive(payload(alert()))
    t.receive(payload(alert(status="resolved")))
    assert t.demands() == [] and t.snapshot()["watchdog"] == "never heard"


def test_alerts_without_a_known_action_ask_nothing() -> None:
    t = trigger(FakeClock())
    assert t.receive(payload(alert(action=None), alert(action="reboot", fingerprint="ff"))) == (
        ACCEPTED
    )
    assert t.demands() == []
