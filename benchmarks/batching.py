"""Continuous batching vs one request at a time, on the same 32 requests.

`python -m benchmarks.batching [--model smollm2-135m-instruct] [--device cuda] [--dtype bfloat16]`;
the last line is `batching_speedup=<batched tokens/s / sequential tokens/s>`. The random tiny
model by default (quick); SmolLM2 takes a few minutes on a CPU (the sequential half dominates).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from inference.backend import GenerationRequest, SamplingParams
from inference.engine import AsyncEngine, EngineConfig, build_engine
from inference.engine.config import DEVICES, DTYPES
from inference.engine.models import BUILTIN_MODELS, TINY

NUM_REQUESTS = 32
MAX_TOKENS = 64


def _requests(engine: AsyncEngine, tag: str, n: int, max_tokens: int) -> list[GenerationRequest]:
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    return [
        GenerationRequest(
            request_id=f"{tag}-{i}",
            prompt_token_ids=engine.tokenizer.encode(f"Request {i}: summarise incident {i * 7}."),
            sampling=params,
        )
        for i in range(n)
    ]


async def _run(engine: AsyncEngine, request: GenerationRequest) -> int:
    tokens = 0
    async for out in engine.generate(request):
        tokens += len(out.token_ids)
    return tokens


async def _main(config: EngineConfig) -> None:
    # Prefix caching off: every request should pay its full prefill in both modes.
    engine = build_engine(config)
    await engine.start()
    try:
        await asyncio.gather(*(_run(engine, r) for r in _requests(engine, "warm", 4, 8)))

        start = time.perf_counter()
        sequential = 0
        for request in _requests(engine, "seq", NUM_REQUESTS, MAX_TOKENS):
            sequential += await _run(engine, request)
        seq_rate = sequential / (time.perf_counter() - start)

        start = time.perf_counter()
        batch = _requests(engine, "batch", NUM_REQUESTS, MAX_TOKENS)
        batched = sum(await asyncio.gather(*(_run(engine, r) for r in batch)))
        batch_rate = batched / (time.perf_counter() - start)
    finally:
        await engine.stop()
    print(
        f"model={config.builtin_model} device={config.device} dtype={config.dtype} "
        f"requests={NUM_REQUESTS} max_tokens={MAX_TOKENS}"
    )
    print(f"sequential_tokens_per_s={seq_rate:.1f}")
    print(f"batched_tokens_per_s={batch_rate:.1f}")
    print(f"batching_speedup={batch_rate / seq_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=TINY, choices=list(BUILTIN_MODELS))
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    args = parser.parse_args()
    config = EngineConfig(
        model=args.model, device=args.device, dtype=args.dtype, enable_prefix_caching=False
    )
    asyncio.run(_main(config))


if __name__ == "__main__":
    main()
