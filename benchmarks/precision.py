"""float32 vs bfloat16 vs int8 on the same SmolLM2 workload, in one run.

`python -m benchmarks.precision [--requests 32] [--max-tokens 64]`: each precision serves the
same chat prompts concurrently, greedy and EOS-blind (every request makes exactly
`--max-tokens` tokens), and prints its tokens/s, the resident bytes of its weights and the share
of generated tokens equal to float32's at the same position, each as a ratio to float32. int8
is PyTorch's dynamic quantization of the linear layers (float32 activations and KV cache).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from inference.backend import GenerationRequest, SamplingParams
from inference.engine import AsyncEngine, EngineConfig, build_engine
from inference.engine.models import SMOLLM2
from inference.engine.quantization import weight_bytes

TOPICS = ["a latency alert", "the KV cache", "prefix caching", "queue depth", "GPU memory",
          "batch traffic", "time to first token", "a burn-rate alert"]  # fmt: skip
ASKS = ["Explain {} in one sentence.", "Why would an SRE watch {}?", "Write a haiku about {}.",
        "Give two facts about {}."]  # fmt: skip
PRECISIONS = {
    "float32": {"dtype": "float32"},
    "bfloat16": {"dtype": "bfloat16"},
    "int8": {"dtype": "float32", "quantization": "int8"},
}


@dataclass
class Run:
    tokens_per_s: float
    weight_bytes: int
    outputs: list[list[int]]


async def _generate(engine: AsyncEngine, request: GenerationRequest) -> list[int]:
    tokens: list[int] = []
    async for out in engine.generate(request):
        tokens += out.token_ids
    return tokens


async def _measure(config: EngineConfig, num_requests: int, max_tokens: int) -> Run:
    engine = build_engine(config)
    await engine.start()
    try:
        tok = engine.tokenizer
        questions = [
            ASKS[i % len(ASKS)].format(TOPICS[i % len(TOPICS)]) for i in range(num_requests)
        ]
        prompts = [tok.encode(tok.apply_chat_template([{"role": "user", "content": q}]))
                   for q in questions]  # fmt: skip
        params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)

        def batch(tag: str, n: int, params: SamplingParams) -> list[GenerationRequest]:
            return [GenerationRequest(f"{tag}-{i}", p, params) for i, p in enumerate(prompts[:n])]

        warm = SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)
        await asyncio.gather(*(_generate(engine, r) for r in batch("warm", 4, warm)))
        start = time.perf_counter()
        outputs = await asyncio.gather(
            *(_generate(engine, r) for r in batch("run", len(prompts), params))
        )
        elapsed = time.perf_counter() - start
        size = weight_bytes(engine._runner.model)
    finally:
        await engine.stop()
    return Run(sum(map(len, outputs)) / elapsed, size, list(outputs))


def _same_share(run: Run, base: Run) -> float:
    pairs = [
        (a, b)
        for x, y in zip(run.outputs, base.outputs, strict=True)
        for a, b in zip(x, y, strict=True)
    ]
    return sum(a == b for a, b in pairs) / max(1, len(pairs))


async def _main(num_requests: int, max_tokens: int) -> None:
    print(f"model={SMOLLM2} requests={num_requests} max_tokens={max_tokens} (greedy, concurrent)")
    runs: dict[str, Run] = {}
    for name, choice in PRECISIONS.items():
        config = EngineConfig(model=SMOLLM2, enable_prefix_caching=False, **choice)  # type: ignore[arg-type]
        runs[name] = run = await _measure(config, num_requests, max_tokens)
        base = runs["float32"]
        print(
            f"{name:<8} tokens_per_s={run.tokens_per_s:.1f} "
            f"({run.tokens_per_s / base.tokens_per_s:.2f}x) "
            f"weight_bytes={run.weight_bytes} ({run.weight_bytes / base.weight_bytes:.2f}x) "
            f"same_tokens={_same_share(run, base):.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(_main(args.requests, args.max_tokens))


if __name__ == "__main__":
    main()
