"""From the engine thread to each caller's event loop: where a sequence's outputs go."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from inference.backend import RequestOutput

from .sequence import Sequence
from .stream import OutputStream

Delivery = tuple[Sequence, RequestOutput]


@dataclass(frozen=True)
class _Route:
    stream: OutputStream
    loop: asyncio.AbstractEventLoop


class OutputBridge:
    """Keeps each live sequence's stream and event loop, so `Sequence` stays pure state.

    Routes are keyed by the sequence object, not its request id: a late output of a cancelled
    request can never reach a new request that reuses the id. Each access is a single dict
    operation, so `attach` (under the engine lock) and `deliver` (outside it, from any
    thread) need no lock of their own.
    """

    def __init__(self) -> None:
        self._routes: dict[Sequence, _Route] = {}

    def attach(self, seq: Sequence, stream: OutputStream, loop: asyncio.AbstractEventLoop) -> None:
        self._routes[seq] = _Route(stream, loop)

    def deliver(self, outputs: list[Delivery]) -> None:
        """One thread-safe callback per event loop; a finished output closes the route."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[OutputStream, RequestOutput]]] = {}
        for seq, out in outputs:
            route = self._routes.pop(seq, None) if out.finished else self._routes.get(seq)
            if route is not None:
                by_loop.setdefault(route.loop, []).append((route.stream, out))
        for loop, items in by_loop.items():
            # A closed loop means nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[OutputStream, RequestOutput]]) -> None:
    for stream, out in items:
        stream.put(out)
