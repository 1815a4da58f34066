"""Drives a workload against a target: open loop (arrivals never wait for answers, so overload
is real overload) or closed loop (a fixed number in flight), bounded in time and count."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from inferwatch.bench.client import Result, Target, send
from inferwatch.bench.workload import Workload

# In-flight requests are awaited this long after the arrivals stop, then cancelled (and counted).
DRAIN_SECONDS = 120.0


async def run(target: Target, workload: Workload) -> tuple[list[Result], float]:
    """(results, wall seconds of the arrival phase)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    rng = random.Random(workload.seed + 1)
    async with httpx.AsyncClient(limits=limits, timeout=target.timeout) as client:
        start = time.monotonic()
        if workload.rate is not None:
            tasks = await _open_loop(client, target, workload, rng, start)
        else:
            tasks = await _closed_loop(client, target, workload, rng, start)
        elapsed = time.monotonic() - start
        done, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS) if tasks else ([], [])
        for task in pending:
            task.cancel()
        results = [t.result() for t in done if not t.cancelled() and t.exception() is None]
        unanswered = len(pending) + sum(1 for t in done if t.cancelled() or t.exception())
        results += [
            Result(priority="?", lost=True, error="no answer within the drain")
            for _ in range(unanswered)
        ]
        return results, elapsed


def _one(
    client: httpx.AsyncClient, target: Target, workload: Workload, rng: random.Random, index: int
) -> asyncio.Task[Result]:
    coro = send(
        client, target, workload.priority(), workload.prompt(index), workload.max_tokens, rng
    )
    return asyncio.ensure_future(coro)


async def _open_loop(
    client: httpx.AsyncClient, target: Target, workload: Workload, rng: random.Random,
    start: float,
) -> list[asyncio.Task[Result]]:  # fmt: skip
    tasks: list[asyncio.Task[Result]] = []
    next_at = start
    for index, gap in enumerate(workload.open_loop_gaps()):
        next_at += gap
        if next_at - start > workload.duration:
            break
        if workload.max_requests is not None and index >= workload.max_requests:
            break
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        tasks.append(_one(client, target, workload, rng, index))
    return tasks


async def _closed_loop(
    client: httpx.AsyncClient, target: Target, workload: Workload, rng: random.Random,
    start: float,
) -> list[asyncio.Task[Result]]:  # fmt: skip
    finished: list[asyncio.Task[Result]] = []
    counter = iter(range(workload.max_requests or 2**62))

    async def worker() -> None:
        while time.monotonic() - start < workload.duration:
            index = next(counter, None)
            if index is None:
                return
            task = _one(client, target, workload, rng, index)
            finished.append(task)
            await asyncio.wait({task})

    await asyncio.gather(*(worker() for _ in range(workload.concurrency)))
    return finished
