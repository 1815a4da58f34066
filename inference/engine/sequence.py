"""One request's state inside the engine: its tokens, its KV blocks, its progress and timings.

Pure state: where its outputs go (stream, event loop) is the bridge's business.
"""

from __future__ import annotations

import itertools
from enum import Enum, auto

import torch

from inference.backend import FinishReason, GenerationRequest, RequestTimes

from .detokenizer import IncrementalDetokenizer

_order = itertools.count()


class SequenceStatus(Enum):
    WAITING = auto()
    RUNNING = auto()
    FINISHED = auto()


class Sequence:
    """Prompt plus generated tokens. After preemption `num_computed_tokens` drops to 0 and the
    whole token list is prefilled again, so the output continues where it stopped."""

    def __init__(
        self,
        request: GenerationRequest,
        detokenizer: IncrementalDetokenizer,
        generator: torch.Generator | None,
    ):
        self.request_id = request.request_id
        self.priority = request.priority  # parsed at the edge (the API)
        self.tenant = request.tenant  # scopes the prefix cache when it is per tenant
        self.arrival = request.arrival
        self.order = next(_order)  # tie-break for equal arrival times
        self.sampling = request.sampling
        self.num_prompt_tokens = len(request.prompt_token_ids)
        self.token_ids: list[int] = list(request.prompt_token_ids)
        self.num_computed_tokens = 0
        self.block_table: list[int] = []
        self.block_hashes: list[bytes] = []  # chained keys of the full blocks, in table order
        self.status = SequenceStatus.WAITING
        self.finish_reason: FinishReason | None = None
        self.error: str | None = None
        self.times = RequestTimes(arrival=request.arrival)
        self.detokenizer = detokenizer
        self.generator = generator

    @property
    def sort_key(self) -> tuple[int, float, int]:
        """Scheduling order: priority class, then arrival (FIFO), then submission order."""
        return (self.priority.rank, self.arrival, self.order)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED
