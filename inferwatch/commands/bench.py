"""`inferwatch bench`: load against any OpenAI-compatible base URL (this service, vLLM,
another). Open loop (`--rate`, Poisson arrivals: overload stays overload) or closed loop
(`--concurrency`), a priority mix sent as `x-priority`, streaming, bounded by `--duration`
and `--requests`; prints per-priority TTFT / time per output token / inter-token latency
percentiles, throughput, refusals, retries and goodput, and writes `--output` JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import httpx

from inferwatch.bench.client import Target
from inferwatch.bench.report import DEFAULT_SLOS, Slo, render, summarize
from inferwatch.bench.runner import run as run_workload
from inferwatch.bench.workload import Workload, parse_mix


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--base-url", default="http://127.0.0.1:8000/v1", help="OpenAI-compatible base URL")
    add("--model", default=None, help="model name (default: the first of /v1/models)")
    add("--api-key", default=None, help="sent as a bearer token")
    add("--rate", type=float, default=None, help="open loop: mean arrivals per second")
    add("--concurrency", type=int, default=8, help="closed loop: requests in flight")
    add("--duration", type=float, default=30.0, help="seconds of arrivals")
    add("--requests", type=int, default=None, help="at most this many requests")
    add("--mix", default="premium=0.2,standard=0.5,batch=0.3", help="priority weights")
    add("--prompt-words", type=int, default=32)
    add("--max-tokens", type=int, default=64)
    add("--chat", action="store_true", help="use /chat/completions")
    add("--max-retries", type=int, default=0, help="retry refusals as the openai client does")
    add("--burst", default=None, help="PERIOD,FACTOR,SHARE: rate x FACTOR for SHARE of PERIOD")
    add("--slo", default=None, help='JSON {"premium": [ttft_s, tpot_s], ...}')
    add("--seed", type=int, default=0)
    add("--timeout", type=float, default=120.0)
    add("--output", type=Path, default=None, help="write the JSON result here")


def run(args: argparse.Namespace) -> int:
    try:
        workload = Workload(
            mix=parse_mix(args.mix), prompt_words=args.prompt_words, max_tokens=args.max_tokens,
            rate=args.rate, concurrency=args.concurrency, duration=args.duration,
            max_requests=args.requests, seed=args.seed, burst=_burst(args.burst),
        )  # fmt: skip
        slos = dict(DEFAULT_SLOS)
        if args.slo:
            slos.update({k: Slo(*map(float, v)) for k, v in json.loads(args.slo).items()})
        if args.rate is not None and args.rate <= 0:
            raise ValueError("--rate must be > 0")
        base = args.base_url.rstrip("/")
        model = args.model or first_model(base, args.api_key)
    except (ValueError, httpx.HTTPError) as exc:
        print(f"inferwatch bench: {exc}", file=sys.stderr)
        return 2
    target = Target(base, model, args.api_key, args.timeout, args.max_retries, args.chat)
    results, seconds = asyncio.run(run_workload(target, workload))
    summary = summarize(results, seconds, slos)
    print(render(summary), flush=True)
    if args.output is not None:
        args.output.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def first_model(base_url: str, api_key: str | None = None) -> str:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(base_url + "/models", headers=headers, timeout=30)
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


def _burst(text: str | None) -> tuple[float, float, float] | None:
    if not text:
        return None
    try:
        period, factor, share = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError("--burst is PERIOD,FACTOR,SHARE (e.g. 60,3,0.25)") from None
    return period, factor, share
