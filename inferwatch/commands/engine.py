"""`inferwatch engine`: the engine alone on a mixed-priority workload, with its own stats."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from inference.backend import GenerationRequest, Priority, RequestOutput, SamplingParams
from inference.engine import AsyncEngine, EngineConfig, build_engine
from inference.settings import config_fields, resolve_config
from inferwatch.commands.options import add_options, given

SYSTEM = "You are a concise assistant for an on-call SRE. Answer in one short paragraph.\n"
QUESTIONS = [
    "Why is p95 time to first token rising?",
    "What does a KV cache preemption cost?",
    "Should batch traffic be shed first?",
    "How do I read a burn-rate alert?",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, config_fields(EngineConfig))
    parser.add_argument("--requests", type=int, default=24, help="number of requests")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens generated per request")


def run(args: argparse.Namespace) -> int:
    try:
        config = resolve_config(EngineConfig, given(args, config_fields(EngineConfig)), os.environ)
        engine = build_engine(config)
    except (ValueError, OSError) as exc:  # bad setting, refused checkpoint, no CUDA device
        print(f"inferwatch engine: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(engine, args.requests, args.max_tokens))


async def _main(engine: AsyncEngine, num_requests: int, max_tokens: int) -> int:
    await engine.start()
    tok = engine.tokenizer
    priorities = list(Priority)
    requests = [
        GenerationRequest(
            request_id=f"demo-{i}",
            # A shared system prompt, so later requests hit the prefix cache.
            prompt_token_ids=tok.encode(SYSTEM + QUESTIONS[i % len(QUESTIONS)]),
            sampling=SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True),
            priority=priorities[i % len(priorities)],
        )
        for i in range(num_requests)
    ]
    start = time.monotonic()
    # Staggered arrivals: later requests find the shared prefix already in the cache.
    finals = await asyncio.gather(
        *(_collect(engine, r, delay=0.01 * i) for i, r in enumerate(requests))
    )
    elapsed = time.monotonic() - start
    print(
        f"{'request':<10} {'priority':<9} {'prompt':>6} {'output':>6} "
        f"{'queue_s':>8} {'ttft_s':>8} {'e2e_s':>8} {'preempted':>9}"
    )
    for req, out in zip(requests, finals, strict=True):
        t = out.times
        queue = (t.first_scheduled or t.arrival) - t.arrival
        ttft = (t.first_token or t.arrival) - t.arrival
        e2e = (t.finished or t.arrival) - t.arrival
        print(
            f"{req.request_id:<10} {req.priority.value:<9} {out.prompt_tokens:>6} "
            f"{out.completion_tokens:>6} {queue:>8.3f} {ttft:>8.3f} {e2e:>8.3f} "
            f"{len(t.preempted):>9}"
        )
    stats = engine.stats()
    await engine.stop()
    generated = sum(o.completion_tokens for o in finals)
    preempted = ", ".join(f"{p.value}={n}" for p, n in stats.kv.preemptions_by_priority.items())
    print(
        f"requests={num_requests} generated_tokens={generated} elapsed_s={elapsed:.2f} "
        f"tokens_per_s={generated / elapsed:.1f}"
    )
    print(f"preemptions: {preempted}")
    print(
        f"prefix_cache: hit_tokens={stats.kv.prefix_cache_hits_tokens} "
        f"query_tokens={stats.kv.prefix_cache_queries_tokens} steps={stats.steps_total}"
    )
    return 0


async def _collect(engine: AsyncEngine, request: GenerationRequest, delay: float) -> RequestOutput:
    await asyncio.sleep(delay)
    request.arrival = time.monotonic()  # it arrives now, not when the list was built
    last = None
    async for out in engine.generate(request):
        last = out
    assert last is not None
    return last
