"""The Alertmanager trigger: webhook notifications (payload version 4) turned into demands.

- Idempotent: Alertmanager retries on 5xx and repeats firing groups, so each alert is applied
  once per (groupKey, fingerprint, startsAt, status); a repeat only renews its lease and counts
  as a duplicate.
- A firing alert's `action` label (the spec's `Action` vocabulary) says what it asks for; a
  resolved one stops asking, and the controller lowers the level after its cooldown.
- A firing alert that is not heard again within `lease_s` has stopped being notified. If the
  Watchdog (alerts/spec.py's always-firing alert) is silent too, the pipeline is what broke
  (Prometheus died and its alerts resolved by timeout): the demand is kept, frozen, instead of
  letting the level relax. A resolved alert is kept for `watchdog_timeout_s` for the same
  reason, since the two notifications may arrive in either order.
- A flapping alert fires again with a new `startsAt` while the resolution of an earlier
  episode, or one whose `startsAt` Alertmanager merged to the earlier time, is still on its
  way: a resolution ends the episode being tracked when it resolved (`endsAt`) after that
  episode began, whatever `startsAt` it carries; a stale one (resolved before) is ignored.
  Matching `startsAt` exactly held a flapping alert's demand for its whole lease.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts.alertmanager import WATCHDOG
from inference.admission.controller import ALERTMANAGER, Demand

ACCEPTED, DUPLICATE, UNAUTHORIZED, INVALID = "accepted", "duplicate", "unauthorized", "invalid"
STATUSES: tuple[str, ...] = (ACCEPTED, DUPLICATE, UNAUTHORIZED, INVALID)

MAX_ALERTS = 1000  # per notification
MAX_TRACKED = 1024  # firing alerts kept at once
MAX_SEEN = 8192  # idempotency keys remembered
MAX_TEXT = 256
_FINGERPRINT = re.compile(r"[0-9a-f]{1,64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


class InvalidNotification(ValueError):
    """Not a version 4 Alertmanager webhook payload (answered 400, never retried)."""


@dataclass(frozen=True)
class Notice:
    group_key: str
    fingerprint: str
    status: str
    starts_at: str
    alertname: str
    action: str | None
    detail: str
    ends_at: str | None = None  # a resolved alert's resolution time, when it says one

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.group_key, self.fingerprint, self.starts_at, self.status)


@dataclass
class _Tracked:
    alertname: str
    action: str
    detail: str
    starts_at: str
    since: float
    heard: float
    resolved: float | None = None


def parse(payload: Any) -> list[Notice]:
    """The alerts of one notification, or InvalidNotification naming what is wrong."""
    if not isinstance(payload, dict):
        raise InvalidNotification("the body must be a JSON object")
    if payload.get("version") != "4":
        raise InvalidNotification("only Alertmanager webhook payload version 4 is understood")
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str) or not 0 < len(group_key) <= 4096:
        raise InvalidNotification("groupKey must be a non-empty string")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not 0 < len(alerts) <= MAX_ALERTS:
        raise InvalidNotification(f"alerts must be a list of 1 to {MAX_ALERTS} alerts")
    return [_notice(group_key, i, a) for i, a in enumerate(alerts)]


def _notice(group_key: str, index: int, alert: Any) -> Notice:
    where = f"alerts[{index}]"
    if not isinstance(alert, dict):
        raise InvalidNotification(f"{where} must be an object")
    status, labels = alert.get("status"), alert.get("labels")
    fingerprint, starts_at = alert.get("fingerprint"), alert.get("startsAt")
    if status not in ("firing", "resolved"):
        raise InvalidNotification(f"{where}.status must be firing or resolved")
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise InvalidNotification(f"{where}.labels must map strings to strings")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise InvalidNotification(f"{where}.fingerprint must be hex digits")
    if not isinstance(starts_at, str) or not _TIME.fullmatch(starts_at):
        raise InvalidNotification(f"{where}.startsAt must be an RFC 3339 time")
    ends_at = alert.get("endsAt")
    if not isinstance(ends_at, str) or not _TIME.fullmatch(ends_at):
        ends_at = None  # optional: a resolution without it is matched by startsAt alone
    annotations = alert.get("annotations")
    summary = annotations.get("summary", "") if isinstance(annotations, dict) else ""
    basis = labels.get("basis")
    detail = str(summary)[:MAX_TEXT] + (f" (basis {basis[:32]})" if basis else "")
    return Notice(
        group_key=group_key,
        fingerprint=fingerprint,
        status=status,
        starts_at=starts_at,
        alertname=labels.get("alertname", "")[:MAX_TEXT],
        action=labels.get("action"),
        detail=detail,
        ends_at=ends_at,
    )


def _instant(text: str) -> datetime:
    """An RFC 3339 time (as _TIME matches it) as an aware datetime; nanoseconds cut to micro."""
    text = re.sub(r"\.(\d{1,6})\d*", r".\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def _ends(notice: Notice, tracked_starts_at: str) -> bool:
    """Whether a resolved notice ends the episode that began at `tracked_starts_at`."""
    if notice.starts_at == tracked_starts_at:
        return True
    return notice.ends_at is not None and _instant(notice.ends_at) > _instant(tracked_starts_at)


class AlertmanagerTrigger:
    """Thread-safe; `clock` is the controller's (monotonic) clock."""

    def __init__(
        self,
        actions: Collection[str],
        *,
        lease_s: float = 660.0,
        watchdog_timeout_s: float = 660.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.actions = frozenset(actions)
        self.lease_s = lease_s
        self.watchdog_timeout_s = watchdog_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self._tracked: dict[str, _Tracked] = {}
        self._watchdog_heard: float | None = None
        self._watchdog_resolved = False

    def receive(self, payload: Any) -> str:
        """Apply one notification; returns `accepted`, or `duplicate` when every alert in it
        had been applied before. Raises InvalidNotification (nothing is applied then)."""
        notices = parse(payload)
        with self._lock:
            now = self._clock()
            fresh = False
            for notice in notices:
                duplicate = notice.key in self._seen
                self._remember(notice.key)
                fresh = fresh or not duplicate
                self._apply(notice, now)
            return ACCEPTED if fresh else DUPLICATE

    def _remember(self, key: tuple[str, str, str, str]) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)

    def _apply(self, notice: Notice, now: float) -> None:
        """Idempotent: applying the same notice again changes nothing but its lease."""
        if notice.alertname == WATCHDOG:
            self._watchdog_heard = now
            self._watchdog_resolved = notice.status == "resolved"
            return
        if notice.action not in self.actions:
            return  # no action (or one this ladder does not know): not the controller's
        tracked = self._tracked.get(notice.fingerprint)
        if notice.status == "resolved":
            ongoing = tracked is not None and tracked.resolved is None
            if ongoing and tracked is not None and _ends(notice, tracked.starts_at):
                tracked.resolved = now
            return
        if tracked is not None and tracked.starts_at == notice.starts_at:
            tracked.heard = now  # a repeat (or a retry): renews the lease, nothing else
            return
        if tracked is None and len(self._tracked) >= MAX_TRACKED:
            return
        self._tracked[notice.fingerprint] = _Tracked(
            notice.alertname, notice.action, notice.detail, notice.starts_at, now, now
        )

    def watchdog_silent(self, now: float | None = None) -> bool:
        """The Watchdog was heard once and now is resolved or overdue. Never heard at all (the
        routing tree does not send it here) is not silence: there is nothing to compare."""
        now = self._clock() if now is None else now
        heard = self._watchdog_heard
        if heard is None:
            return False
        return self._watchdog_resolved or now - heard > self.watchdog_timeout_s

    def demands(self) -> list[Demand]:
        """What the alerts heard ask for now (frozen ones included)."""
        with self._lock:
            now = self._clock()
            silent = self.watchdog_silent(now)
            out: list[Demand] = []
            for fingerprint, t in list(self._tracked.items()):
                ended = t.resolved if t.resolved is not None else t.heard + self.lease_s
                if now < ended:
                    out.append(self._demand(t, frozen=False))
                elif silent:
                    out.append(self._demand(t, frozen=True))
                elif now - ended > self.watchdog_timeout_s:
                    del self._tracked[fingerprint]
            return out

    @staticmethod
    def _demand(t: _Tracked, frozen: bool) -> Demand:
        return Demand(ALERTMANAGER, t.action, t.alertname, t.detail, t.since, frozen)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            heard = self._watchdog_heard
            return {
                "watchdog": "never heard"
                if heard is None
                else ("silent" if self.watchdog_silent(now) else "heard"),
                "watchdog_heard_seconds_ago": None if heard is None else round(now - heard, 3),
                "tracked_alerts": len(self._tracked),
            }
