"""Overload: the same 3x-capacity open-loop workload against the service with admission on
(`--admission-mode adaptive`: degradation levels, adaptive per-priority limits, deadlines) and
off (`--admission-mode fifo`: one first-come-first-served queue whose bound is the only
protection, as vLLM's and SGLang's queue caps do), in one run.

Capacity is measured first, in the same run (closed loop, as many in flight as the engine runs
at once, on the FIFO server); each server then gets an unloaded premium probe (one request at a
time) and the overload: `--load` x capacity, 20% premium / 50% standard / 30% batch, Poisson
arrivals for `--seconds`, no client retries (so TTFT is each request's own). Goodput counts
requests that met their class's SLO (inferwatch bench's defaults: premium TTFT 1 s, standard
3 s, batch 30 s). Printed: per-priority p50/p99 TTFT and goodput for both, the controller's
refusals by reason and level, where premium's time to first token went (means: what the
client saw, the server's own TTFT from the request's arrival, and its wait in the engine's
queue; client minus server is HTTP, tokenisation and delivery, server minus queue is the step
that prefilled it), premium p99 under overload against its unloaded p99 on the same server
(`premium_overload_p99_vs_unloaded=`), the floor under that (premium alone at its share of the
overload rate, every other class shed for free, on the FIFO server against its own unloaded
p99: `premium_alone_p99_vs_unloaded=`), and last `premium_p99_ttft_ratio=<on/off>` then
`goodput_ratio=<on/off>`.

    python -m benchmarks.overload [--seconds 60] [--load 3] [--max-tokens 32] [--alone-seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.serving import serve
from benchmarks.soak import server_counts
from inferwatch.bench.client import Result, Target
from inferwatch.bench.report import DEFAULT_SLOS, percentile, summarize
from inferwatch.bench.runner import run
from inferwatch.bench.workload import Workload, parse_mix

MIX = "premium=0.2,standard=0.5,batch=0.3"
MAX_NUM_SEQS = 16
SERVE_ARGS = ["--max-num-seqs", str(MAX_NUM_SEQS), "--max-waiting", "64"]
SERVE_ARGS += ["--num-kv-blocks", "512"]
PRIORITIES = ("premium", "standard", "batch")
# The built-in random-weight model: fast enough to overload in a minute on a CPU.
TINY = {"INFERWATCH_MODEL": "tiny"}


def _target(base_url: str) -> Target:
    model = httpx.get(base_url + "/v1/models", timeout=30).json()["data"][0]["id"]
    return Target(base_url + "/v1", model)


def _p99_ttft(results: list[Result], priority: str) -> float | None:
    return percentile([r.ttft for r in results if r.ok and r.priority == priority and r.ttft], 99)


# The server's premium histograms that split its time to first token.
SPLIT = ("inferwatch_time_to_first_token_seconds", "inferwatch_queue_wait_seconds")


def _premium_sums(base_url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each of SPLIT for premium, as the server has them now."""
    text = httpx.get(base_url + "/metrics", timeout=30).text
    out = {family: (0.0, 0.0) for family in SPLIT}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            family = sample.name.removesuffix("_sum").removesuffix("_count")
            if family not in out or sample.labels.get("priority") != "premium":
                continue
            total, count = out[family]
            if sample.name.endswith("_sum"):
                out[family] = (total + sample.value, count)
            elif sample.name.endswith("_count"):
                out[family] = (total, count + sample.value)
    return out


def _split(base_url: str, before: dict[str, tuple[float, float]], results: list[Result]) -> str:
    """Premium's mean TTFT as the client saw it, the server's, and its engine queue wait."""
    after = _premium_sums(base_url)
    means = []
    for family in SPLIT:
        total, count = (a - b for a, b in zip(after[family], before[family], strict=True))
        means.append(total / count if count else None)
    client = [r.ttft for r in results if r.ok and r.priority == "premium" and r.ttft]
    mean = sum(client) / len(client) if client else None
    return f"client={_ms(mean)} server={_ms(means[0])} engine_queue={_ms(means[1])}"


def _premium_only(
    target: Target, args: argparse.Namespace, seed: int, **pace: Any
) -> tuple[float | None, list[Result]]:
    """Premium alone at `pace` (concurrency or rate, and duration): its p99 TTFT and results."""
    workload = Workload(mix={"premium": 1.0}, max_tokens=args.max_tokens, seed=seed, **pace)
    results, _ = asyncio.run(run(target, workload))
    return _p99_ttft(results, "premium"), results


def _probe(target: Target, args: argparse.Namespace) -> tuple[float | None, list[Result]]:
    """Premium alone, one at a time: its unloaded p99 TTFT (and the results)."""
    return _premium_only(target, args, 7, concurrency=1, duration=args.probe_seconds)


def _alone(target: Target, rate: float, args: argparse.Namespace) -> float | None:
    """Premium alone at its share of the overload rate, open loop (another draw of the same
    Poisson process): its p99 TTFT when every other class is shed for free, the floor that no
    admission policy goes below."""
    share = parse_mix(MIX)["premium"]
    duration = args.alone_seconds or args.seconds
    return _premium_only(target, args, 3, rate=rate * share, duration=duration)[0]


def _overload(target: Target, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload(
        mix=parse_mix(MIX), max_tokens=args.max_tokens, rate=rate, duration=args.seconds,
        seed=1,
    )  # fmt: skip
    results, seconds = asyncio.run(run(target, workload))
    return {"results": results, "summary": summarize(results, seconds, DEFAULT_SLOS)}


def _mode(mode: str, rate: float | None, args: argparse.Namespace) -> dict[str, Any]:
    with serve([*SERVE_ARGS, "--admission-mode", mode], env_extra=TINY) as served:
        target = _target(served.base_url)
        out: dict[str, Any] = {}
        if rate is None:
            probe = Workload(
                mix=parse_mix(MIX), max_tokens=args.max_tokens, concurrency=MAX_NUM_SEQS,
                duration=args.capacity_seconds,
            )  # fmt: skip
            results, seconds = asyncio.run(run(target, probe))
            out["capacity"] = sum(r.ok for r in results) / seconds
            rate = args.load * out["capacity"]
        sums = _premium_sums(served.base_url)
        out["unloaded_p99"], probed = _probe(target, args)
        out["unloaded_split"] = _split(served.base_url, sums, probed)
        if mode == "fifo":  # nothing adaptive here for the extra load to teach
            out["alone_p99"] = _alone(target, rate, args)
        sums = _premium_sums(served.base_url)
        before = server_counts(served.base_url, "inferwatch_request_rejections_total", "reason")
        out.update(_overload(target, rate, args))
        after = server_counts(served.base_url, "inferwatch_request_rejections_total", "reason")
        out["overload_split"] = _split(served.base_url, sums, out["results"])
        out["limits"] = server_counts(
            served.base_url, "inferwatch_admission_concurrency_limit", "priority"
        )
        out["reasons"] = after - before
        out["rate"] = rate
        out["levels"] = server_counts(
            served.base_url, "inferwatch_degradation_transitions_total", "direction"
        )
    return out


def _lines(name: str, run_: dict[str, Any]) -> list[str]:
    summary = run_["summary"]
    lines = [f"[{name}] offered={run_['rate']:.2f} req/s sent={summary['total']['sent']} "
             f"completed={summary['total']['completed']} lost={summary['total']['lost']} "
             f"refused_by_reason={dict(sorted(run_['reasons'].items()))} "
             f"level_changes={dict(run_['levels'])} "
             f"limits_kv_tokens_at_end={dict(run_['limits'])}"]  # fmt: skip
    for priority in PRIORITIES:
        c = summary["by_priority"].get(priority)
        if c is None:
            continue
        p50, p99 = (_ms(c["ttft"][k]) for k in ("p50", "p99"))
        lines.append(
            f"[{name}] {priority:<8} sent={c['sent']:>4} ok={c['completed']:>4} "
            f"refused={c['refused']:>4} ttft_p50_ms={p50} ttft_p99_ms={p99} "
            f"goodput={c['goodput']:.2f}/s"
        )
    lines.append(f"[{name}] goodput={summary['total']['goodput']:.2f}/s")
    lines.append(f"[{name}] premium_ttft_mean_ms unloaded: {run_['unloaded_split']}")
    lines.append(f"[{name}] premium_ttft_mean_ms overload: {run_['overload_split']}")
    return lines


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "nan" if a is None or not b else f"{a / b:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="overload duration per mode")
    parser.add_argument("--load", type=float, default=3.0, help="offered load / capacity")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--capacity-seconds", type=float, default=15.0)
    parser.add_argument("--probe-seconds", type=float, default=8.0)
    parser.add_argument("--alone-seconds", type=float, help="default: --seconds")
    args = parser.parse_args(argv)

    off = _mode("fifo", None, args)
    print(f"capacity={off['capacity']:.2f} req/s (closed loop, {MAX_NUM_SEQS} in flight)")
    on = _mode("adaptive", off["rate"], args)
    for line in _lines("off", off) + _lines("on", on):
        print(line)
    on_p99, off_p99 = _p99_ttft(on["results"], "premium"), _p99_ttft(off["results"], "premium")
    print(f"premium_unloaded_p99_ttft_ms={_ms(on['unloaded_p99'])} "
          f"premium_overload_p99_vs_unloaded={_ratio(on_p99, on['unloaded_p99'])}")  # fmt: skip
    alone_ms, alone = _ms(off["alone_p99"]), _ratio(off["alone_p99"], off["unloaded_p99"])
    print(f"premium_alone_p99_ttft_ms={alone_ms} premium_alone_p99_vs_unloaded={alone}")
    on_good = on["summary"]["total"]["goodput"]
    off_good = off["summary"]["total"]["goodput"]
    print(f"premium_p99_ttft_ratio={_ratio(on_p99, off_p99)}")
    print(f"goodput_ratio={_ratio(on_good, off_good)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
