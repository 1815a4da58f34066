"""The picture (PNG, matplotlib without a display) and an HTML page beside it with the same
picture and a table of every alert's pending and firing intervals."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display here, nor on a CI runner
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from inferwatch.report.panels import Panel  # noqa: E402
from inferwatch.report.prometheus import Series  # noqa: E402

STYLES = {
    "signal": {"lw": 1.6},
    "baseline": {"lw": 1.2, "ls": "--"},
    "band": {"lw": 0.8, "ls": ":"},
}


@dataclass(frozen=True)
class Interval:
    alert: str
    state: str
    start: float
    end: float
    labels: dict[str, str]


def alert_intervals(series: list[Series], step: float) -> list[Interval]:
    """Runs of consecutive samples of each ALERTS series (a gap longer than a step ends one)."""
    out: list[Interval] = []
    for s in series:
        if not s.times:
            continue
        run_start = prev = s.times[0]
        for t in s.times[1:]:
            if t - prev > step * 1.5:
                out.append(_interval(s, run_start, prev))
                run_start = t
            prev = t
        out.append(_interval(s, run_start, prev))
    return sorted(out, key=lambda i: (i.start, i.alert, i.state))


def _interval(s: Series, start: float, end: float) -> Interval:
    labels = {k: v for k, v in s.labels.items() if k not in ("__name__", "alertname", "alertstate")}
    return Interval(s.labels.get("alertname", "?"), s.labels.get("alertstate", "?"), start, end,
                    labels)  # fmt: skip


def draw(
    title: str, panels: list[tuple[Panel, list[list[Series]]]], start: float, end: float,
    step: float,
) -> bytes:  # fmt: skip
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.3 * len(panels)), sharex=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (panel, results) in zip(axes, panels, strict=True):
        ax.set_title(panel.title, loc="left", fontsize=10)
        if panel.unit:
            ax.set_ylabel(panel.unit, fontsize=8)
        if panel.kind == "alerts":
            _draw_alerts(ax, alert_intervals(results[0], step))
        else:
            for line, series in zip(panel.lines, results, strict=True):
                for s in series:
                    raw_times, values = _with_gaps(s, step)
                    times = [dt.datetime.fromtimestamp(t, dt.UTC) for t in raw_times]
                    label = (
                        f"{_legend(s, line.legend)} {line.role if line.role != 'signal' else ''}"
                    )
                    if panel.kind == "steps":
                        ax.step(times, values, where="post", label=label.strip())
                    else:
                        ax.plot(times, values, label=label.strip(), **STYLES[line.role])
            if not any(results):
                ax.text(0.5, 0.5, "no data in this window", ha="center", va="center",
                        transform=ax.transAxes, color="grey")  # fmt: skip
            elif sum(len(r) for r in results) <= 12:
                ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlim(
        dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC)
    )
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.UTC))
    axes[-1].set_xlabel("UTC")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the suptitle above the first panel
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _with_gaps(s: Series, step: float) -> tuple[list[float], list[float]]:
    """The series with a NaN wherever it was absent for more than a step, so a line breaks
    there: a gated SLI that vanished (too few requests in its window) is not drawn as a ramp."""
    times: list[float] = []
    values: list[float] = []
    for t, v in zip(s.times, s.values, strict=True):
        if times and t - times[-1] > step * 1.5:
            times.append((times[-1] + t) / 2)
            values.append(math.nan)
        times.append(t)
        values.append(v)
    return times, values


def _draw_alerts(ax: plt.Axes, intervals: list[Interval]) -> None:
    names = sorted({i.alert for i in intervals})
    for i in intervals:
        y = names.index(i.alert)
        color = "tab:red" if i.state == "firing" else "tab:orange"
        start = dt.datetime.fromtimestamp(i.start, dt.UTC)
        width = dt.timedelta(seconds=max(i.end - i.start, 1))
        ax.barh(y, width, left=start, height=0.6, color=color)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    if not names:
        ax.text(0.5, 0.5, "no alert pending or firing", ha="center", va="center",
                transform=ax.transAxes, color="grey")  # fmt: skip


def _legend(s: Series, keys: str) -> str:
    return ",".join(s.labels.get(k, "") for k in keys.split(",")) or "-"


def page(title: str, png: bytes, intervals: list[Interval]) -> str:
    rows = (
        "\n".join(
            f"<tr><td>{html.escape(i.alert)}</td><td>{i.state}</td><td>{_utc(i.start)}</td>"
            f"<td>{_utc(i.end)}</td><td>{html.escape(str(i.labels))}</td></tr>"
            for i in intervals
        )
        or '<tr><td colspan="5">no alert was pending or firing</td></tr>'
    )
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<img alt="incident" src="data:image/png;base64,{image}">
<h2>Alerts</h2>
<table><tr><th>alert</th><th>state</th><th>from (UTC)</th><th>to (UTC)</th><th>labels</th></tr>
{rows}
</table>
</body></html>
"""


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
