"""An open-loop load driver whose rate the scenario turns up and down while it runs.

Open loop (arrivals never wait for answers) so an overload is a real one; the rate is read at
each arrival, so a phase change takes effect at once. It runs an asyncio loop on its own
thread and keeps, per priority, how many answers had each status. In-flight requests are
bounded (`max_in_flight`): on a slow machine the client must not become the bottleneck it
measures, and an arrival past the bound is counted as skipped rather than queued here.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

# 20% premium, 50% standard, 30% batch, as benchmarks/overload.py mixes them.
MIX = ("premium", "standard", "standard", "batch", "standard", "batch", "premium", "standard",
       "batch", "standard")  # fmt: skip


@dataclass(frozen=True)
class Phase:
    rate: float  # arrivals per second; 0 pauses
    max_tokens: int
    prompt_chars: int = 0  # padding to this length (the tiny model's tokens are bytes)


@dataclass
class Load:
    base_url: str
    model: str
    phase: Phase = field(default_factory=lambda: Phase(0.0, 8))
    max_in_flight: int = 256
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    skipped: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def count(self, priority: str, status: int) -> int:
        with self._lock:
            return self.statuses[(priority, status)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=64)
        in_flight: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.base_url, timeout=120, limits=limits) as c:
            for index, priority in enumerate(itertools.cycle(MIX)):
                if self._stop.is_set():
                    break
                phase = self.phase
                if phase.rate <= 0:
                    await asyncio.sleep(0.1)
                    continue
                if len(in_flight) >= self.max_in_flight:
                    self.skipped += 1
                else:
                    task = asyncio.create_task(self._one(c, priority, index, phase))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                await asyncio.sleep(1.0 / phase.rate)
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _one(self, c: httpx.AsyncClient, priority: str, index: int, phase: Phase) -> None:
        prompt = f"incident {index % 50} tell me more"
        if phase.prompt_chars > len(prompt):  # distinct from its first block: no prefix-cache hit
            prompt = f"incident {index} " + "and then " * (phase.prompt_chars // 9)
            prompt = prompt[: phase.prompt_chars]
        body = {"model": self.model, "prompt": prompt, "max_tokens": phase.max_tokens,
                "priority": priority}  # fmt: skip
        try:
            status = (await c.post("/v1/completions", json=body)).status_code
        except httpx.HTTPError:
            status = 0  # no answer: counted, never raised on the loop's thread
        with self._lock:
            self.statuses[(priority, status)] += 1
