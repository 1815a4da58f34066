"""Turns a scheduled batch into model inputs, sizes and owns the KV cache tensor, runs the
forward and samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import DEFAULT_CPU_KV_BLOCKS, EngineConfig, ModelConfig
from .loader import LoadedModel
from .model import AttentionGroup, AttentionMetadata, LlamaForCausalLM
from .sampler import Sampled, sample
from .scheduler import ScheduledSeq

Member = tuple[int, ScheduledSeq]  # (offset of its first token in the flat batch, the sequence)


@dataclass
class PreparedBatch:
    """Everything the forward needs, captured while the scheduler lock is held, so a cancel
    that frees blocks mid-step cannot change the inputs under the running model."""

    input_ids: Tensor
    positions: Tensor
    meta: AttentionMetadata
    logits_index: Tensor
    sampling: list[ScheduledSeq]  # the sequences that get a new token, in logits row order


def kv_cache_blocks(config: EngineConfig, loaded: LoadedModel) -> int:
    """The operator's block count, else a default: fixed on CPU; on CUDA a share of the free
    memory, capped at what every running sequence at full context could use."""
    if config.num_kv_blocks:
        return config.num_kv_blocks
    if config.device == "cpu":
        return DEFAULT_CPU_KV_BLOCKS
    free, _ = torch.cuda.mem_get_info()
    per_block = math.prod(_kv_cache_shape(loaded.model_config, 1, config.block_size))
    per_block *= torch.empty(0, dtype=config.torch_dtype).element_size()
    # More than every running sequence at full context could use is idle memory.
    useful = config.max_num_seqs * -(-loaded.max_model_len // config.block_size)
    return max(1, min(useful, int(free * config.gpu_memory_fraction) // per_block))


def _kv_cache_shape(cfg: ModelConfig, num_blocks: int, block_size: int) -> tuple[int, ...]:
    """[layer, K or V, block, slot, kv head, head dim]: what one block costs follows from it."""
    return (
        cfg.num_hidden_layers,
        2,
        num_blocks,
        block_size,
        cfg.num_key_value_heads,
        cfg.head_dim,
    )


class ModelRunner:
    def __init__(
        self, model: LlamaForCausalLM, num_blocks: int, block_size: int, device: torch.device
    ):
        self.model = model
        self.device = device
        self.block_size = block_size
        dtype = model.model.embed_tokens.weight.dtype
        shape = _kv_cache_shape(model.config, num_blocks, block_size)
        self.kv_cache = torch.zeros(*shape, dtype=dtype, device=device)

    def prepare(self, batch: list[ScheduledSeq]) -> PreparedBatch:
        input_ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        logits_index: list[int] = []
        sampling: list[ScheduledSeq] = []
        decodes: list[Member] = []
        prefills: list[Member] = []
        bs = self.block_size
        for item in batch:
            seq, n = item.seq, item.num_tokens
            start = seq.num_computed_tokens
            offset = len(input_ids)
            input_ids += seq.token_ids[start : start + n]
            positions += range(start, start + n)
            slots += [seq.block_table[p // bs] * bs + p % bs for p in range(start, start + n)]
            (decodes if n == 1 else prefills).append((offset, item))
            if start + n == len(seq.token_ids):
                logits_index.append(offset + n - 1)
                sampling.append(item)
        groups = [self._group(g) for g in (*_similar_sizes(decodes), *_similar_sizes(prefills))]
        dev = self.device
        return PreparedBatch(
            input_ids=torch.tensor(input_ids, dtype=torch.long, device=dev),
            positions=torch.tensor(positions, dtype=torch.long, device=dev),
            meta=AttentionMetadata(torch.tensor(slots, dtype=torch.long, device=dev), groups),
            logits_index=torch.tensor(logits_index, dtype=torch.long, device=dev),
            sampling=sampling,
        )

    def _group(self, members: list[Member]) -> AttentionGroup:
        """Pad queries to the longest chunk and keys to the longest block table of the group."""
        q_len = max(item.num_tokens for _, item in members)
        max_blocks = max(len(item.seq.block_table) for _, item in members)
        query_index: list[list[int]] = []
        src: list[int] = []
        dest: list[int] = []
        tables: list[list[int]] = []
        starts: list[int] = []
        for b, (offset, item) in enumerate(members):
            n = item.num_tokens
            query_index.append([offset + q for q in range(n)] + [0] * (q_len - n))
            src += range(b * q_len, b * q_len + n)
            dest += range(offset, offset + n)
            table = item.seq.block_table
            tables.append(table + [0] * (max_blocks - len(table)))
            starts.append(item.seq.num_computed_tokens)
        dev = self.device
        keys = torch.arange(max_blocks * self.block_size, device=dev)
        last_key = torch.tensor(starts, device=dev)[:, None] + torch.arange(q_len, device=dev)
        mask = keys[None, None, :] <= last_key[:, :, None]  # causal; padding keys lie beyond
        return AttentionGroup(
            query_index=torch.tensor(query_index, dtype=torch.long, device=dev),
            src=torch.tensor(src, dtype=torch.long, device=dev),
            dest=torch.tensor(dest, dtype=torch.long, device=dev),
            block_tables=torch.tensor(tables, dtype=torch.long, device=dev),
            mask=mask.unsqueeze(1),
        )

    def run(self, prepared: PreparedBatch) -> list[Sampled]:
        """One step's forward and sampling: the part of a step run without the lock. A row
        whose sampling failed comes back as a `SampleError`, for its sequence alone to fail."""
        items = prepared.sampling
        with torch.inference_mode():
            logits = self.execute(prepared)
            return sample(logits, [i.seq.sampling for i in items], [i.seq.generator for i in items])

    def execute(self, prepared: PreparedBatch) -> Tensor:
        """Logits [len(prepared.sampling), vocab] as float32 (float64 stays float64).
        Call under torch.inference_mode()."""
        logits = self.model(
            prepared.input_ids,
            prepared.positions,
            self.kv_cache,
            prepared.meta,
            prepared.logits_index,
        )
        return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _attention_size(member: Member) -> int:
    """Queries x key blocks: what padding a group to this member costs each other member."""
    return member[1].num_tokens * len(member[1].seq.block_table)


def _similar_sizes(members: list[Member]) -> list[list[Member]]:
    """Split into groups of similar attention size, so padding every member of a group to its
    largest wastes about half the group's attention work at most (one long prompt does not
    make fifteen short ones pay for its length)."""
    groups: list[list[Member]] = []
    current: list[Member] = []
    total = 0
    for member in sorted(members, key=_attention_size):
        n = _attention_size(member)
        if current and (len(current) + 1) * n > 2 * (total + n):
            groups.append(current)
            current, total = [], 0
        current.append(member)
        total += n
    if current:
        groups.append(current)
    return groups
