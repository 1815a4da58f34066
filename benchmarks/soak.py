"""Soak: the real service at a multiple of its measured capacity for a bounded time, checking
that nothing accepted is lost and nothing grows.

Capacity is measured first in the same run (closed loop, as many in flight as the engine runs
at once); then `inferwatch bench`'s open-loop client offers `--load` times that rate with the
20/50/30 priority mix for `--minutes`. Printed: accepted, completed, rejected by reason (the
server's own counter) and by status (what clients saw), failed, RSS growth of the server, p99
TTFT per priority, and last `lost=<n>`: requests the client sent that neither completed nor got
a visible error. It must print `lost=0`.

    python -m benchmarks.soak [--minutes 2] [--load 2] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.serving import rss_bytes, serve
from inferwatch.bench.client import Result, Target
from inferwatch.bench.report import percentile
from inferwatch.bench.runner import run
from inferwatch.bench.workload import Workload, parse_mix

MIX = "premium=0.2,standard=0.5,batch=0.3"
MAX_NUM_SEQS = 16


def server_counts(base_url: str, family: str, label: str) -> Counter[str]:
    text = httpx.get(base_url + "/metrics", timeout=30).text
    counts: Counter[str] = Counter()
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            if sample.name == family and sample.value:
                counts[sample.labels[label]] += int(sample.value)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--load", type=float, default=2.0, help="offered load / capacity")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--capacity-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    # The random tiny model: the soak measures the service, not a model's speed.
    serve_args = ["--model", "tiny", "--max-num-seqs", str(MAX_NUM_SEQS), "--max-waiting", "64"]
    serve_args += ["--num-kv-blocks", "512"]
    with serve(serve_args) as served:
        target = Target(served.base_url + "/v1", httpx.get(served.base_url + "/v1/models").json()
                        ["data"][0]["id"])  # fmt: skip
        mix = parse_mix(MIX)
        probe = Workload(
            mix=mix, max_tokens=args.max_tokens, concurrency=MAX_NUM_SEQS,
            duration=args.capacity_seconds,
        )  # fmt: skip
        results, seconds = asyncio.run(run(target, probe))
        capacity = sum(r.ok for r in results) / seconds
        print(f"capacity={capacity:.2f} req/s (closed loop, {MAX_NUM_SEQS} in flight)")
        rss_before = rss_bytes(served.pid)
        before = server_counts(served.base_url, "inferwatch_request_rejections_total", "reason")
        soak = Workload(
            mix=mix, max_tokens=args.max_tokens, rate=args.load * capacity,
            duration=args.minutes * 60, seed=1,
        )  # fmt: skip
        results, seconds = asyncio.run(run(target, soak))
        rss_after = rss_bytes(served.pid)
        after = server_counts(served.base_url, "inferwatch_request_rejections_total", "reason")
    print(report(results, seconds, args.load * capacity, after - before, rss_after - rss_before))
    return 0


def report(
    results: list[Result], seconds: float, rate: float, reasons: Counter[str], rss_growth: int
) -> str:
    refused = [r for r in results if not r.ok and not r.lost and r.status in (429, 503)]
    completed = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok and not r.lost and r not in refused]
    lost = [r for r in results if r.lost]
    lines = [
        f"offered={rate:.2f} req/s for {seconds:.0f} s: sent={len(results)}",
        f"accepted={len(results) - len(refused)} completed={len(completed)} failed={len(failed)}",
        f"rejected_by_reason={dict(sorted(reasons.items()))} "
        f"rejected_by_status={dict(Counter(r.status for r in refused))}",
        f"rss_growth_mb={rss_growth / 2**20:.1f}",
    ]
    for priority in ("premium", "standard", "batch"):
        ttfts = [r.ttft for r in completed if r.priority == priority and r.ttft is not None]
        p99 = percentile(ttfts, 99)
        shown = "-" if p99 is None else f"{p99 * 1000:.0f}"
        lines.append(f"p99_ttft_ms[{priority}]={shown} (n={len(ttfts)})")
    for r in (failed + lost)[:5]:
        lines.append(f"  e.g. {r.priority} status={r.status} error={r.error}")
    lines.append(f"lost={len(lost)}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
