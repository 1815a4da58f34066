"""One request's bad input, or one step's fault, hurts no one else (issue 13, item 1).

Through the engine API directly, as any library caller would: the HTTP API refuses or rewrites
the worst sampling values, the engine must survive them anyway. Bystanders run greedy in
float64, so "the same tokens as alone" can be asserted token for token. Faults are injected by
wrapping the engine's own runner and sequence state, the only test doubles here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import torch

from inference.backend import GenerationRequest, SamplingParams
from inference.engine import AsyncEngine, sampler
from inference.engine.model_runner import PreparedBatch
from inference.engine.scheduler import ScheduledSeq
from tests.engine import conftest as engine_fixtures
from tests.support.engine import (
    WAIT_S,
    EngineFactory,
    Result,
    collect,
    make_request,
    prompt_of,
    run_all,
)

make_engine = engine_fixtures.make_engine  # the tests/engine fixture: real engines, stopped

HOSTILE = [  # each one, before, failed every sequence of the step it was in
    {"temperature": 1.0, "top_p": 1e-46},
    {"temperature": 1.0, "top_p": 5e-324},
    {"temperature": 1e-300},
    {"temperature": 5e-324, "top_p": 1e-46},
    {"temperature": 1e-300, "top_p": 0.5},
]


def _bystanders(n: int = 6) -> list[GenerationRequest]:
    return [make_request(f"by{i}", prompt_of(12 + 3 * i, seed=i), 20) for i in range(n)]


async def _alone(engine: AsyncEngine, requests: list[GenerationRequest]) -> list[list[int]]:
    """Each request's tokens when it has the engine to itself."""
    tokens = []
    for r in requests:
        (result,) = await run_all(engine, [dataclasses.replace(r, request_id=r.request_id + "-a")])
        tokens.append(result.tokens)
    return tokens


async def _running(engine: AsyncEngine, requests: list[GenerationRequest]) -> list[Any]:
    """Streams of `requests`, returned once each has produced a token: a running batch."""
    streams = [engine.generate(r) for r in requests]
    firsts = await asyncio.gather(*(asyncio.wait_for(s.__anext__(), WAIT_S) for s in streams))
    assert not any(f.finished for f in firsts)
    return [_Resumed(s, f) for s, f in zip(streams, firsts, strict=True)]


class _Resumed:
    """A stream whose first output was already read, for `collect`."""

    def __init__(self, stream: Any, first: Any) -> None:
        self.stream, self.first = stream, first

    async def __aiter__(self) -> AsyncIterator[Any]:
        yield self.first
        async for out in self.stream:
            yield out


def _assert_unharmed(results: list[Result], alone: list[list[int]]) -> None:
    for result, tokens in zip(results, alone, strict=True):
        assert result.final.finish_reason == "length", result.final.error
        assert result.tokens == tokens


async def test_hostile_sampling_in_a_running_batch_fails_no_bystander(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(dtype="float64")
    bystanders = _bystanders()
    hostile = [
        make_request(f"bad{i}", prompt_of(9 + i, seed=40 + i), 8, seed=i, **h)
        for i, h in enumerate(HOSTILE)
    ]
    alone = await _alone(engine, bystanders)
    greedy = await _alone(engine, [dataclasses.replace(r, sampling=_greedy(r)) for r in hostile])

    running = await _running(engine, bystanders)
    bad = [engine.generate(r) for r in hostile]  # join the running batch
    results = await asyncio.gather(*(collect(s) for s in [*running, *bad]))

    _assert_unharmed(results[: len(bystanders)], alone)
    # And the hostile requests themselves are served: such values mean greedy.
    _assert_unharmed(results[len(bystanders) :], greedy)
    assert engine.ready() and engine.stats().kv.blocks_used == 0


def _greedy(request: GenerationRequest) -> SamplingParams:
    return dataclasses.replace(request.sampling, temperature=0.0, top_p=1.0, seed=None)


async def test_a_sequence_whose_sampling_raises_fails_alone(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sampler._sample_row

    def flaky(logits: torch.Tensor, p: SamplingParams, gen: torch.Generator | None) -> int:
        if p.seed == 666:
            raise RuntimeError("injected sampling fault")
        return real(logits, p, gen)

    monkeypatch.setattr(sampler, "_sample_row", flaky)
    engine = await make_engine(dtype="float64")
    seeded = make_request("seeded", prompt_of(15, 9), 20, temperature=0.9, top_p=0.9, seed=5)
    bystanders = [*_bystanders(4), seeded]  # the seeded one samples the same alone or not
    alone = await _alone(engine, bystanders)
    running = await _running(engine, bystanders)
    victim = engine.generate(make_request("victim", prompt_of(11, 3), 8, temperature=1.0, seed=666))
    *results, failed = await asyncio.gather(*(collect(s) for s in [*running, victim]))

    assert failed.final.finish_reason == "error"
    assert failed.final.error == "sampling error: RuntimeError: injected sampling fault"
    _assert_unharmed(results, alone)
    assert engine.ready() and engine.stats().kv.blocks_used == 0


async def test_an_output_fault_of_one_sequence_fails_it_alone(make_engine: EngineFactory) -> None:
    """A tokenizer that cannot decode a sampled id (a model vocab wider than the tokenizer's)
    raises while building that sequence's output, not anyone else's."""
    engine = await make_engine(dtype="float64")
    bystanders = _bystanders(4)
    alone = await _alone(engine, bystanders)
    running = await _running(engine, bystanders)

    def broken(token_id: int) -> None:
        raise KeyError(token_id)

    with engine._lock:  # broken before the engine thread can schedule it
        victim = engine.generate(make_request("victim", prompt_of(11, 3), 8))
        seq = engine._scheduler.get("victim")
        assert seq is not None
        seq.detokenizer.add_token = broken  # type: ignore[method-assign]
        seq.detokenizer.take = lambda final: 1 / 0  # type: ignore[assignment, method-assign]
    *results, failed = await asyncio.gather(*(collect(s) for s in [*running, victim]))

    assert failed.final.finish_reason == "error" and "output error: KeyError" in failed.final.error
    _assert_unharmed(results, alone)
    assert engine.ready() and engine.stats().kv.blocks_used == 0


@pytest.mark.parametrize("where", ["forward", "prepare"])
async def test_a_faulty_step_fails_only_its_sequences_and_the_engine_serves_on(
    make_engine: EngineFactory, where: str
) -> None:
    """The third step raises (in the forward, or while building its inputs): exactly the
    sequences of that step fail; those waiting meanwhile and those submitted later succeed."""
    engine = await make_engine(start=False, dtype="float64", max_num_seqs=2)
    runner = engine._runner
    steps: list[list[ScheduledSeq]] = []
    prepare, run = runner.prepare, runner.run

    def counting_prepare(batch: list[ScheduledSeq]) -> PreparedBatch:
        steps.append(list(batch))
        if where == "prepare" and len(steps) == 3:
            raise RuntimeError("injected step fault")
        return prepare(batch)

    def faulty_run(prepared: PreparedBatch) -> list[sampler.Sampled]:
        if len(steps) == 3:
            raise RuntimeError("injected step fault")
        return run(prepared)

    runner.prepare = counting_prepare  # type: ignore[method-assign]
    runner.run = faulty_run  # type: ignore[method-assign]
    requests = _bystanders(4)
    streams = [engine.generate(r) for r in requests]  # two run, two wait
    await engine.start()
    results = await asyncio.gather(*(collect(s) for s in streams))

    in_fault = {i.seq.request_id for i in steps[2]}
    assert len(in_fault) == 2 and len(in_fault) < len(requests)
    reference = await _alone(engine, requests)
    expected = "model error" if where == "forward" else "engine error"
    for request, result, tokens in zip(requests, results, reference, strict=True):
        if request.request_id in in_fault:
            assert result.final.finish_reason == "error"
            assert result.final.error == f"{expected}: RuntimeError: injected step fault"
        else:
            assert result.final.finish_reason == "length" and result.tokens == tokens
    later = await run_all(
        engine, [dataclasses.replace(r, request_id=r.request_id + "-later") for r in requests]
    )
    _assert_unharmed(later, reference)
    assert engine.ready() and engine.stats().kv.blocks_used == 0
