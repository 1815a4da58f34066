"""Next-token choice per sequence: greedy, or temperature/top-p with the request's own RNG.

Each seeded request owns a torch.Generator, so its draws do not depend on which other requests
happen to share the batch.

Sampling cannot fail a batch. torch.multinomial raises on CPU, and trips a device-side assert
on CUDA that poisons the whole process, when a row holds NaN, inf or no mass; so every row is
computed to be drawable whatever finite temperature or top_p a caller passes (float32 would
round 1e-300 or 1e-46 to 0), a row that still is not (NaN logits) is drawn greedily, and a row
whose sampling raises anyway fails its own sequence only (`SampleError`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from inference.backend import SamplingParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleError:
    """One row whose sampling raised: that sequence fails, the rest of the batch goes on."""

    message: str


Sampled = int | SampleError


def sample(
    logits: Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> list[Sampled]:
    greedy = logits.argmax(dim=-1).tolist()
    tokens: list[Sampled] = []
    for row, p, gen in zip(range(len(params)), params, generators, strict=True):
        if p.temperature == 0:
            tokens.append(greedy[row])
            continue
        try:
            tokens.append(_sample_row(logits[row], p, gen))
        except Exception as exc:  # isolate the row: the others' tokens are still good
            log.exception("sampling failed for one sequence")
            tokens.append(SampleError(f"sampling error: {type(exc).__name__}: {exc}"))
    return tokens


def _sample_row(logits: Tensor, p: SamplingParams, gen: torch.Generator | None) -> int:
    # Below the dtype's smallest normal a temperature or top_p would round to 0 (0/0 = NaN,
    # "no token within top_p"); at that size both already mean greedy, so clamp.
    tiny = torch.finfo(logits.dtype).tiny
    # Relative to the row's maximum every logit is <= 0, so dividing by any temperature gives
    # 0 for the best token and at worst -inf for the others: never +inf, never NaN.
    scaled = (logits - logits.max()) / max(p.temperature, tiny)
    probs = torch.softmax(scaled, dim=-1)
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more likely tokens
        drop = before >= max(p.top_p, tiny)
        drop[0] = False  # the most likely token always stays: a tiny top_p is greedy
        kept = _drawable(sorted_probs.masked_fill(drop, 0.0), best=0)
        return int(order[torch.multinomial(kept, 1, generator=gen)])
    return int(torch.multinomial(_drawable(probs, best=logits.argmax()), 1, generator=gen))


def _drawable(probs: Tensor, best: int | Tensor) -> Tensor:
    """`probs` if multinomial can draw from it, else all mass on index `best` (a model that
    produced NaN or inf logits); chosen on the device, without a host sync."""
    ok = torch.isfinite(probs).all() & (probs.sum() > 0)
    onehot = torch.zeros_like(probs)
    onehot[best] = 1.0
    return torch.where(ok, probs, onehot)
