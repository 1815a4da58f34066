"""inferwatch in front of a real vLLM, against vLLM direct, in one run (`inferwatch bench`'s
workload runner for every measurement).

One vLLM (from `.venv-vllm`, `make vllm`) serves the tiny model's Hugging Face folder written by
the project, with its priority scheduling on; two `inferwatch serve --upstream` front it: a plain
proxy (admission off) and a guarded one (adaptive admission, the controller on, priorities
passed on to vLLM with `--upstream-priority`, its ceiling twice what vLLM runs at once in
tokens; `--front-arg` adds flags to it). First
vLLM's capacity is measured direct (closed loop, as many in flight as it runs at once). Then:

(a) moderate load (`--moderate` x capacity, open loop, Poisson, standard priority) direct and
    through inferwatch as a plain proxy (`--admission-mode off`) and through a raw TCP relay
    (`benchmarks.tcp_relay`: the least any Python front costs here), after a discarded warm-up
    run, in ABCCBA order: `proxy_throughput_ratio=` (output tokens/s through over direct,
    target >= 0.95), `relay_ttft_ratio=` (median TTFT through the relay over direct: the
    floor, for information) and `proxy_ttft_ratio=` (median TTFT through over direct, target
    <= 1.05);
    the same load through the guarded front too (`admission_on_ttft_ratio=`, for information:
    what adaptive admission adds at this load);
(b) overload (`--load` x capacity, 20% premium / 50% standard / 30% batch) direct and through
    with the controller on: `premium_p99_ttft_ratio=` (premium p99 TTFT through over direct,
    target <= 0.33) and `goodput_ratio=` (requests meeting their class's SLO per second,
    through over direct, target >= 1).

Both targets get the same seeded arrivals and prompts; vLLM is idle again before each run.

    python -m benchmarks.vllm_front [--seconds 20] [--load 3] [--moderate 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serving import REPO, free_port, serve
from benchmarks.tcp_relay import relay
from inference.engine.hf_export import write_hf_folder
from inferwatch.bench.client import Result, Target
from inferwatch.bench.report import DEFAULT_SLOS, percentile, summarize
from inferwatch.bench.runner import run
from inferwatch.bench.workload import Workload, parse_mix

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
SERVED = "inferwatch-tiny"
MIX = "premium=0.2,standard=0.5,batch=0.3"
MAX_NUM_SEQS = 8
PROMPT_WORDS, MAX_TOKENS = 32, 32
VLLM_READY_SECONDS = 600


@contextmanager
def vllm(model_dir: Path, log: Path) -> Iterator[str]:
    """vLLM's OpenAI server on loopback, ready; its base URL."""
    port = free_port()
    argv = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", "2048", "--enforce-eager", "--max-num-seqs", str(MAX_NUM_SEQS),
        # Its own priority scheduling, which inferwatch feeds (--upstream-priority); requests
        # sent direct carry no priority, so for them it is first come, first served.
        "--scheduling-policy", "priority",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(VLLM_CPU_KVCACHE_SPACE="1", VLLM_NO_USAGE_STATS="1", HF_HUB_OFFLINE="1")
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + VLLM_READY_SECONDS
            while not _answers(base + "/v1/models"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"vLLM did not start; see {log}")
                time.sleep(1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def vllm_busy(base: str) -> float:
    """vLLM's waiting + running now."""
    text = httpx.get(base + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("vllm:num_requests_waiting{", "vllm:num_requests_running{"))
    )


def idle(base: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while vllm_busy(base) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)


@dataclass(frozen=True)
class _TaggedWorkload(Workload):
    """Every run's prompts start with its own tag: vLLM caches prefixes, and with the same
    prompts in every run each run after the first found its prompts' blocks cached and skipped
    most of its prefill (vLLM's prefix cache hit rate climbed to 40% over the moderate runs,
    and the first direct run was the slowest in every run order tried). The seed stays the
    same, so every run of a load sends the same number of requests at the same moments."""

    tag: int = 0

    def prompt(self, index: int) -> str:
        return f"Run {self.tag:03d}. " + super().prompt(index)


_RUNS = itertools.count()


def measure(base: str, **workload: Any) -> tuple[list[Result], dict[str, Any]]:
    target = Target(base + "/v1", SERVED, timeout=120.0)
    load = _TaggedWorkload(
        prompt_words=PROMPT_WORDS, max_tokens=MAX_TOKENS, seed=7, tag=next(_RUNS), **workload
    )
    results, seconds = asyncio.run(run(target, load))
    return results, summarize(results, seconds, dict(DEFAULT_SLOS))


def ttft(results: list[Result], p: float, priority: str | None = None) -> float | None:
    values = [
        r.ttft
        for r in results
        if r.ok and r.ttft is not None and (priority is None or r.priority == priority)
    ]
    return percentile(values, p)


def ratio(a: float | None, b: float | None) -> str:
    return "nan" if a is None or not b else f"{a / b:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="arrivals per run")
    parser.add_argument("--load", type=float, default=3.0, help="overload, x capacity")
    parser.add_argument("--moderate", type=float, default=0.5, help="moderate load, x capacity")
    parser.add_argument(
        "--vllm-url", default=None, help="a running vLLM serving --model-dir (default: start one)"
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="with --vllm-url")
    parser.add_argument("--front-arg", action="append", default=[], help="extra serve flag")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vllm-front-"))
    model_dir = args.model_dir or write_hf_folder("tiny", work / "tiny-hf", seed=0)
    started = time.monotonic()
    with _vllm_or(args.vllm_url, model_dir, work / "vllm.log") as direct:
        print(f"vllm ready in {time.monotonic() - started:.0f} s", flush=True)
        upstream = ["--upstream", direct, "--model-path", str(model_dir)]
        # The limit's ceiling in tokens: twice what vLLM runs at once (a batch running and one
        # waiting, as the built-in engine's is twice its KV cache); a proxy has no KV cache to
        # size it by. A prompt of PROMPT_WORDS words is about 8 byte tokens a word.
        ceiling = 2 * MAX_NUM_SEQS * (PROMPT_WORDS * 8 + MAX_TOKENS)
        guarded = [*upstream, "--upstream-priority", "--max-inflight-tokens", str(ceiling)]
        guarded += args.front_arg
        with (
            serve([*upstream, "--admission-mode", "off"]) as proxy,
            serve(guarded) as front,
            relay(direct) as raw,
        ):
            measure(direct, mix={"standard": 1.0}, concurrency=MAX_NUM_SEQS, duration=3)  # warm
            idle(direct)
            _, cap = measure(
                direct, mix={"standard": 1.0}, concurrency=MAX_NUM_SEQS, duration=args.seconds / 2
            )
            capacity = cap["total"]["completed"] / cap["total"]["seconds"]
            print(
                f"capacity={capacity:.2f} req/s (closed loop, {MAX_NUM_SEQS} in flight)", flush=True
            )

            # A discarded warm-up at this load first (the first run after the closed-loop
            # capacity measurement was the slowest of its kind in every run; see _TaggedWorkload),
            # then direct, the relay and through in ABCCBA order (twice each), so a drift of the
            # machine's other load over the runs weighs on all alike.
            moderate = {"mix": {"standard": 1.0}, "rate": args.moderate * capacity}
            idle(direct)
            measure(direct, duration=args.seconds / 2, **moderate)
            names = ("direct", "relay", "through", "guarded")
            pooled: dict[str, list[list[Result]]] = {name: [] for name in names}
            tokens: dict[str, float] = dict.fromkeys(pooled, 0.0)
            order = [("direct", direct), ("relay", raw), ("through", proxy.base_url)]
            order += order[::-1]
            for name, base in [*order, ("guarded", front.base_url)]:
                idle(direct)
                results, summary = measure(base, duration=args.seconds, **moderate)
                pooled[name].append(results)
                tokens[name] += summary["total"]["output_tokens_per_s"] / len(
                    [n for n, _ in order if n == name] or [0]
                )
                _print(f"(a) {name}", summary)
            print(f"front refusals so far: {refusals(front.base_url)}", flush=True)
            flat = {name: [r for rs in runs for r in rs] for name, runs in pooled.items()}
            throughput = ratio(tokens["through"], tokens["direct"])
            ttft_ratio = ratio(ttft(flat["through"], 50), ttft(flat["direct"], 50))
            relay_ttft = ratio(ttft(flat["relay"], 50), ttft(flat["direct"], 50))
            admitted_ttft = ratio(ttft(flat["guarded"], 50), ttft(flat["direct"], 50))
            runs: dict[str, tuple[list[Result], dict[str, Any]]] = {}

            overload = {"mix": parse_mix(MIX), "rate": args.load * capacity}
            for name, base in (("direct", direct), ("through", front.base_url)):
                idle(direct)
                runs[name] = measure(base, duration=args.seconds, **overload)
                _print(f"(b) {name}", runs[name][1])
            print(f"front refusals so far: {refusals(front.base_url)}", flush=True)
            (d_res, d_sum), (t_res, t_sum) = runs["direct"], runs["through"]
            premium = ratio(ttft(t_res, 99, "premium"), ttft(d_res, 99, "premium"))
            goodput = ratio(t_sum["total"]["goodput"], d_sum["total"]["goodput"])
    print(f"proxy_throughput_ratio={throughput}")
    print(f"relay_ttft_ratio={relay_ttft}")
    print(f"proxy_ttft_ratio={ttft_ratio}")
    print(f"admission_on_ttft_ratio={admitted_ttft}")
    print(f"premium_p99_ttft_ratio={premium}")
    print(f"goodput_ratio={goodput}")


@contextmanager
def _vllm_or(url: str | None, model_dir: Path, log: Path) -> Iterator[str]:
    if url is not None:
        yield url.rstrip("/")
        return
    if not VLLM_PYTHON.exists():
        raise SystemExit("no .venv-vllm: run `make vllm` first")
    with vllm(model_dir, log) as base:
        yield base


def refusals(base: str) -> dict[str, float]:
    """The front's refusals so far, by reason, and its degradation level."""
    out: dict[str, float] = {}
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith("inferwatch_request_rejections_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("inferwatch_degradation_level{"):
            out["level"] = float(line.rsplit(" ", 1)[1])
    return {k: v for k, v in out.items() if v}


def _print(label: str, summary: dict[str, Any]) -> None:
    t = summary["total"]
    parts = [f"{label}: sent={t['sent']} completed={t['completed']} lost={t['lost']}"]
    parts.append(f"tok/s={t['output_tokens_per_s']:.1f} goodput={t['goodput']:.2f}/s")
    for name, c in summary["by_priority"].items():
        p50, p99 = c["ttft"]["p50"], c["ttft"]["p99"]
        shown = "/".join("-" if v is None else f"{v * 1000:.0f}" for v in (p50, p99))
        parts.append(f"{name}: ttft p50/p99 {shown} ms refused={c['refused']}")
    print("; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
