"""Submit-time checks: a request that could never finish is refused before it takes a slot."""

from __future__ import annotations

import math

from inference.backend import GenerationRequest, InvalidRequestError, PromptTooLongError

from .block_manager import BlockManager

_SEED_MIN, _SEED_END = -(2**63), 2**64  # what torch.Generator.manual_seed accepts


class RequestValidator:
    """Rejects what no amount of waiting would make servable (HTTP 400), with a message that
    names the limit; everything else is the scheduler's business."""

    def __init__(self, max_model_len: int, vocab_size: int, blocks: BlockManager):
        self.max_model_len = max_model_len
        self.vocab_size = vocab_size
        self._blocks = blocks  # only its fixed size is read, so no lock is needed

    def check(self, request: GenerationRequest) -> None:
        prompt, params = request.prompt_token_ids, request.sampling
        limit = self.max_model_len
        if not prompt:
            raise InvalidRequestError("the prompt is empty")
        if len(prompt) > limit:
            raise PromptTooLongError(
                f"the prompt has {len(prompt)} tokens but the context window "
                f"(max_model_len) is {limit} tokens"
            )
        if params.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {params.max_tokens}")
        total = len(prompt) + params.max_tokens
        if total > limit:
            raise PromptTooLongError(
                f"prompt ({len(prompt)} tokens) + max_tokens ({params.max_tokens}) = {total} "
                f"exceeds the context window (max_model_len) of {limit} tokens"
            )
        needed, cache = self._blocks.blocks_for(total), self._blocks.num_blocks
        if needed > cache:
            raise PromptTooLongError(
                f"prompt + max_tokens = {total} tokens needs {needed} KV blocks but the whole "
                f"cache has {cache} blocks of {self._blocks.block_size} tokens"
            )
        # Any finite temperature >= 0 and top_p in (0, 1] is safe to sample with: the sampler
        # clamps values below float32's smallest normal (which would round to 0) to it, where
        # both already mean greedy. NaN and inf have no meaning and fail every comparison.
        if not (math.isfinite(params.temperature) and params.temperature >= 0):
            raise InvalidRequestError(
                f"temperature must be a finite number >= 0, got {params.temperature}"
            )
        if not 0 < params.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {params.top_p}")
        if params.seed is not None and not _SEED_MIN <= params.seed < _SEED_END:
            raise InvalidRequestError(f"seed must be in [-2**63, 2**64), got {params.seed}")
        if min(prompt) < 0 or max(prompt) >= self.vocab_size:
            raise InvalidRequestError(f"prompt token ids must be in [0, {self.vocab_size})")
