"""Next-token choice per sequence: greedy, or temperature/top-p with the request's own RNG.

Each seeded request owns a torch.Generator, so its draws do not depend on which other requests
happen to share the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from inference.backend import SamplingParams


def sample(
    logits: Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> list[int]:
    greedy = logits.argmax(dim=-1).tolist()
    tokens: list[int] = []
    for row, p, gen in zip(range(len(params)), params, generators, strict=True):
        if p.temperature == 0:
            tokens.append(greedy[row])
        else:
            tokens.append(_sample_row(logits[row], p, gen))
    return tokens


def _sample_row(logits: Tensor, p: SamplingParams, gen: torch.Generator | None) -> int:
    probs = torch.softmax(logits / p.temperature, dim=-1)
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more likely tokens
        sorted_probs = sorted_probs.masked_fill(before >= p.top_p, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=gen)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=gen))
