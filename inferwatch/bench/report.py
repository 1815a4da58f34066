"""Per-priority figures of a run, as vLLM's benchmark defines them: TTFT, time per output
token (after the first) and inter-token latency percentiles, throughput, refusals by status,
retries, and goodput (requests that met their class's SLO, per second)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from inferwatch.bench.client import Result

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Slo:
    ttft: float  # seconds
    tpot: float  # seconds per output token


# Defaults per class: premium is interactive, batch only has to finish.
DEFAULT_SLOS = {
    "premium": Slo(ttft=1.0, tpot=0.1),
    "standard": Slo(ttft=3.0, tpot=0.2),
    "batch": Slo(ttft=30.0, tpot=1.0),
}


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(results: list[Result], seconds: float, slos: dict[str, Slo]) -> dict[str, Any]:
    by_class: dict[str, Any] = {}
    for priority in sorted({r.priority for r in results}):
        group = [r for r in results if r.priority == priority]
        ok = [r for r in group if r.ok]
        slo = slos.get(priority)
        good = [r for r in ok if slo is not None and _meets(r, slo)]
        by_class[priority] = {
            "sent": len(group),
            "completed": len(ok),
            "failed": sum(1 for r in group if not r.ok and not r.lost and not _refused(r)),
            "refused": sum(1 for r in group if _refused(r)),
            "lost": sum(1 for r in group if r.lost),
            "refusals_by_status": dict(Counter(s for r in group for s in r.refusals)),
            "retries": sum(r.retries for r in group),
            "ttft": _percentiles([r.ttft for r in ok if r.ttft is not None]),
            "tpot": _percentiles([t for r in ok if (t := r.tpot) is not None]),
            "itl": _percentiles([gap for r in ok for gap in r.itls]),
            "output_tokens_per_s": sum(r.output_tokens for r in ok) / seconds,
            "requests_per_s": len(ok) / seconds,
            "goodput": len(good) / seconds,
        }
    total = {
        "sent": len(results),
        "completed": sum(1 for r in results if r.ok),
        "lost": sum(1 for r in results if r.lost),
        "goodput": sum(c["goodput"] for c in by_class.values()),
        "output_tokens_per_s": sum(c["output_tokens_per_s"] for c in by_class.values()),
        "seconds": seconds,
    }
    return {"total": total, "by_priority": by_class}


def _refused(r: Result) -> bool:
    return not r.ok and not r.lost and r.status in (429, 503)


def _meets(r: Result, slo: Slo) -> bool:
    tpot = r.tpot
    return r.ttft is not None and r.ttft <= slo.ttft and (tpot is None or tpot <= slo.tpot)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in PERCENTILES}


def render(summary: dict[str, Any]) -> str:
    """Human lines, then `key=value` lines benchmarks and scripts parse."""
    lines = [
        f"{'priority':<9} {'sent':>5} {'ok':>5} {'refused':>7} {'failed':>6} {'lost':>4} "
        f"{'ttft p50/p90/p99 ms':>22} {'tpot p50/p99 ms':>16} {'itl p99 ms':>10} "
        f"{'tok/s':>7} {'goodput/s':>9}"
    ]
    for name, c in summary["by_priority"].items():
        ttft = "/".join(_ms(c["ttft"][f"p{p}"]) for p in PERCENTILES)
        tpot = "/".join(_ms(c["tpot"][f"p{p}"]) for p in (50, 99))
        lines.append(
            f"{name:<9} {c['sent']:>5} {c['completed']:>5} {c['refused']:>7} {c['failed']:>6} "
            f"{c['lost']:>4} {ttft:>22} {tpot:>16} {_ms(c['itl']['p99']):>10} "
            f"{c['output_tokens_per_s']:>7.1f} {c['goodput']:>9.2f}"
        )
        if c["refusals_by_status"] or c["retries"]:
            lines.append(f"          refusals={c['refusals_by_status']} retries={c['retries']}")
    t = summary["total"]
    lines.append(
        f"sent={t['sent']} completed={t['completed']} goodput={t['goodput']:.3f} "
        f"output_tokens_per_s={t['output_tokens_per_s']:.1f} lost={t['lost']}"
    )
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"
