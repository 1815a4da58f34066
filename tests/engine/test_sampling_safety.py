"""Sampling cannot fail a batch: values float32 cannot represent and NaN logits each stay in
their own row (issue 13, item 1); a row whose sampling raises is tests/reliability's
test_blast_radius."""

from __future__ import annotations

import pytest
import torch

from inference.backend import InvalidRequestError, SamplingParams
from inference.engine.sampler import sample
from tests.support.engine import EngineFactory, make_request, prompt_of, run_all

VOCAB = 258
# Each rounds to 0 somewhere in float32: 1e-46 and 5e-324 as a top_p, 1e-300 as a divisor.
HOSTILE = [
    {"temperature": 1.0, "top_p": 1e-46},
    {"temperature": 1.0, "top_p": 5e-324},
    {"temperature": 1e-300, "top_p": 1.0},
    {"temperature": 5e-324, "top_p": 1.0},
    {"temperature": 1e-300, "top_p": 1e-46},
    {"temperature": 1e-40, "top_p": 0.5},
]


def _rows(dtype: torch.dtype, n: int = 4) -> torch.Tensor:
    return torch.randn(n, VOCAB, generator=torch.Generator().manual_seed(3), dtype=dtype)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: f"t={h['temperature']}-p={h['top_p']}")
def test_hostile_row_is_greedy_and_leaves_the_others_alone(
    dtype: torch.dtype, hostile: dict[str, float]
) -> None:
    logits = _rows(dtype)
    normal = [SamplingParams(temperature=0.0), SamplingParams(temperature=0.8, top_p=0.9)]
    bad = SamplingParams(**hostile)
    params = [normal[0], bad, normal[1], bad]
    tokens = sample(logits, params, [None, _gen(1), _gen(2), _gen(3)])
    greedy = logits.argmax(-1).tolist()
    assert tokens[1] == greedy[1] and tokens[3] == greedy[3]
    # The bystanders draw exactly what they draw without the hostile rows beside them.
    alone = sample(logits[[0, 2]], normal, [None, _gen(2)])
    assert [tokens[0], tokens[2]] == alone


def test_nan_or_inf_logits_fall_back_to_greedy_for_that_row_only() -> None:
    logits = _rows(torch.float32, 3)
    logits[0, 5] = float("nan")
    logits[1, 9] = float("inf")
    params = [SamplingParams(temperature=1.0, top_p=0.9), SamplingParams(), SamplingParams()]
    tokens = sample(logits, params, [_gen(1), _gen(2), _gen(3)])
    assert all(isinstance(t, int) and 0 <= t < VOCAB for t in tokens)
    assert tokens[1] == 9  # the only token with any mass
    assert tokens[2] == sample(logits[2:], params[2:], [_gen(3)])[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"temperature": float("inf")}, "temperature must be a finite number"),
        ({"top_p": float("nan")}, "top_p must be in"),
        ({"top_p": float("inf")}, "top_p must be in"),
        ({"temperature": 1.0, "seed": 2**64}, "seed must be in"),
        ({"temperature": 1.0, "seed": -(2**63) - 1}, "seed must be in"),
    ],
)
async def test_values_with_no_meaning_are_refused_at_submit(
    make_engine: EngineFactory, kwargs: dict[str, float], message: str
) -> None:
    engine = await make_engine(start=False)
    with pytest.raises(InvalidRequestError, match=message):
        engine.generate(make_request("bad", prompt_of(5), 4, **kwargs))
    assert sum(engine.stats().waiting_by_priority.values()) == 0


async def test_tiny_values_are_accepted_and_sample_greedily(make_engine: EngineFactory) -> None:
    engine = await make_engine(dtype="float64")
    prompt = prompt_of(20, seed=5)
    (greedy,) = await run_all(engine, [make_request("g", prompt, 12)])
    results = await run_all(
        engine, [make_request(f"h{i}", prompt, 12, seed=i, **h) for i, h in enumerate(HOSTILE)]
    )
    for r in results:
        assert r.final.finish_reason == "length" and r.tokens == greedy.tokens
