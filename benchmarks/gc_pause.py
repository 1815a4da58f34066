"""What a full garbage collection costs the service while it serves, before and after
`inferwatch serve` freezes its start-up heap (`freeze_startup_heap`), in one run.

The service is built here as `inferwatch serve` builds it (settings, model, tokenizer, app) and
served by uvicorn on a loopback port in a thread (the tests' `ServerThread`), so the collector
walks the same few hundred thousand start-up objects plus whatever serving leaves alive. A full
collection holds the GIL throughout: every request in flight, and the engine thread between its
torch calls, waits for it. Each half serves the same closed-loop load (`--requests`, 4 in
flight), then times `--collections` full collections. Printed per half: the objects the
collector tracks and the full collection's median and max, and last
`gc_pause_ratio=<after/before>`.

    python -m benchmarks.gc_pause [--model tiny] [--requests 64] [--collections 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time

import httpx

from inference.api.app import build_app
from inference.service import build_service
from inference.settings import Settings
from inferwatch.bench.client import Target
from inferwatch.bench.runner import run
from inferwatch.bench.workload import Workload
from inferwatch.commands.serve import freeze_startup_heap
from tests.support.service import ServerThread


def _serve_load(target: Target, requests: int, seed: int) -> int:
    workload = Workload(
        mix={"standard": 1.0},
        max_tokens=16,
        concurrency=4,
        max_requests=requests,
        seed=seed,
        duration=120.0,
    )
    results, _ = asyncio.run(run(target, workload))
    return sum(r.ok for r in results)


def _full_collections(count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        gc.collect()
        seconds.append(time.perf_counter() - start)
    return seconds


def _half(name: str, target: Target, args: argparse.Namespace, seed: int) -> float:
    ok = _serve_load(target, args.requests, seed)
    seconds = _full_collections(args.collections)
    print(
        f"{name}: served={ok}/{args.requests} tracked_objects={len(gc.get_objects())} "
        f"full_collection_ms median={statistics.median(seconds) * 1000:.1f} "
        f"max={max(seconds) * 1000:.1f}"
    )
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="INFERWATCH_MODEL (default: the service's default)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--collections", type=int, default=7)
    args = parser.parse_args(argv)
    if args.model:
        os.environ["INFERWATCH_MODEL"] = args.model
    app = build_app(build_service(Settings.resolve({})))
    with ServerThread(app) as base:
        target = Target(base + "/v1", httpx.get(base + "/v1/models").json()["data"][0]["id"])
        before = _half("before", target, args, seed=1)
        freeze_startup_heap()
        after = _half("after", target, args, seed=2)
    print(f"frozen_objects={gc.get_freeze_count()} model={target.model}")
    print(f"gc_pause_ratio={after / before:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
