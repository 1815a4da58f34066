"""`inferwatch report --prometheus URL --from T1 --to T2 -o incident.png`: the key signals of a
time window drawn from a real Prometheus, with their baselines and breach bands, the alerts
that were pending and firing, the degradation level and refusals by priority; an HTML page with
the same picture and the alert intervals is written beside the PNG."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from pathlib import Path

from inferwatch.report.panels import panels
from inferwatch.report.prometheus import Prometheus, PrometheusError
from inferwatch.report.render import alert_intervals, draw, page

_RELATIVE = re.compile(r"^(now)?-?(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    add("--from", dest="start", default="now-30m", help="RFC 3339, unix seconds, or now-30m")
    add("--to", dest="end", default="now", help="RFC 3339, unix seconds, or now")
    add("--step", type=float, default=None, help="seconds between points (default: ~300 points)")
    add("-o", "--output", type=Path, default=Path("incident.png"), help="the PNG to write")
    add("--title", default=None)
    add(
        "--rate-window", type=float, default=None,
        help="seconds: the rate window of the recording rules Prometheus runs (default: the "
        "spec's, 300); a faster test copy of the rules names its series after its own window",
    )  # fmt: skip


def parse_time(text: str, now: float) -> float:
    if text == "now":
        return now
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(2)) * _UNIT[match.group(3)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (RFC 3339, unix seconds, now, now-30m)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def run(args: argparse.Namespace) -> int:
    try:
        now = time.time()
        start, end = parse_time(args.start, now), parse_time(args.end, now)
        if end <= start:
            raise ValueError("--to must be after --from")
        step = args.step or max(1.0, (end - start) / 300)
        prometheus = Prometheus(args.prometheus)
        drawn = [
            (panel, [prometheus.range(line.query, start, end, step) for line in panel.lines])
            for panel in panels(rate_window=args.rate_window)
        ]
    except (ValueError, PrometheusError) as exc:
        print(f"inferwatch report: {exc}", file=sys.stderr)
        return 2
    title = args.title or (
        f"inferwatch incident {dt.datetime.fromtimestamp(start, dt.UTC):%Y-%m-%d %H:%M} - "
        f"{dt.datetime.fromtimestamp(end, dt.UTC):%H:%M} UTC"
    )
    png = draw(title, drawn, start, end, step)
    alerts = next(results[0] for panel, results in drawn if panel.kind == "alerts")
    intervals = alert_intervals(alerts, step)
    args.output.write_bytes(png)
    html_path = args.output.with_suffix(".html")
    html_path.write_text(page(title, png, intervals))
    print(f"wrote {args.output} and {html_path} ({len(intervals)} alert intervals)")
    return 0
