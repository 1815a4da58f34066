"""A Llama-style decoder whose attention reads and writes a paged KV cache.

Module and parameter names follow Hugging Face's LlamaForCausalLM, so a checkpoint's state dict
loads without renaming. Tokens of all scheduled sequences are flattened into one [T, hidden]
batch for the dense layers; only attention needs per-sequence structure, which it gets from
`AttentionMetadata` (built once per step by the model runner and shared by every layer).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig


@dataclass
class AttentionGroup:
    """Sequences attended in one padded SDPA call (decodes together, prefills together).

    `query_index[b, q]` is the flat token row of sequence b's q-th new token (padding repeats
    row 0); outputs for real queries go from padded rows `src` to flat rows `dest`.
    `block_tables` [B, max_blocks] gathers each sequence's K/V; `mask` [B, 1, Q, K] is causal
    within the sequence's context and hides padding keys.
    """

    query_index: Tensor
    src: Tensor
    dest: Tensor
    block_tables: Tensor
    mask: Tensor


@dataclass
class AttentionMetadata:
    slot_mapping: Tensor  # [T] flat cache slot (block * block_size + offset) of each new token
    groups: list[AttentionGroup]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # Half precision inputs are normalised in float32, as HF does, to match checkpoints.
        compute = torch.promote_types(x.dtype, torch.float32)
        h = x.to(compute)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotary_tables(cfg: ModelConfig, max_len: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos/sin [max_len, head_dim] in the rotate-half layout HF checkpoints are stored in."""
    compute = torch.promote_types(dtype, torch.float32)
    exponents = torch.arange(0, cfg.head_dim, 2, dtype=compute) / cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta**exponents)
    if cfg.rope_llama3 is not None:
        inv_freq = llama3_inv_freq(inv_freq, *cfg.rope_llama3)
    freqs = torch.outer(torch.arange(max_len, dtype=compute), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def llama3_inv_freq(
    inv_freq: Tensor, factor: float, low_freq_factor: float, high_freq_factor: float, old_len: int
) -> Tensor:
    """Llama 3.1's context extension: long wavelengths slowed by `factor`, short ones kept,
    the band between interpolated (HF `_compute_llama3_parameters`)."""
    wavelen = 2 * math.pi / inv_freq
    low_freq_wavelen = old_len / low_freq_factor
    high_freq_wavelen = old_len / high_freq_factor
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.head_dim
        bias = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, cfg.hidden_size, bias=False)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, kv: Tensor, meta: AttentionMetadata
    ) -> Tensor:
        t = x.shape[0]
        q = self.q_proj(x).view(t, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(t, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(t, self.num_kv_heads, self.head_dim)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k_cache, v_cache = kv[0], kv[1]  # [num_blocks, block_size, kv_heads, head_dim]
        k_cache.view(-1, self.num_kv_heads, self.head_dim).index_copy_(0, meta.slot_mapping, k)
        v_cache.view(-1, self.num_kv_heads, self.head_dim).index_copy_(0, meta.slot_mapping, v)
        out = x.new_empty(t, self.num_heads * self.head_dim)
        for g in meta.groups:
            b, nq = g.query_index.shape
            qg = q[g.query_index].transpose(1, 2)  # [B, heads, Q, head_dim]
            kg = k_cache[g.block_tables].flatten(1, 2).transpose(1, 2)  # [B, kv_heads, K, hd]
            vg = v_cache[g.block_tables].flatten(1, 2).transpose(1, 2)
            og = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=g.mask, enable_gqa=True)
            og = og.transpose(1, 2).reshape(b * nq, -1)
            out[g.dest] = og[g.src]
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, kv: Tensor, meta: AttentionMetadata
    ) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv, meta)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.tie_weights()
        self.rope_cos = torch.empty(0)
        self.rope_sin = torch.empty(0)

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def setup_rotary(self, max_len: int, dtype: torch.dtype, device: torch.device) -> None:
        """Tables at the model dtype (float64 needs float64 angles, not upcast float32 ones)."""
        cos, sin = rotary_tables(self.config, max_len, dtype)
        self.rope_cos, self.rope_sin = cos.to(device), sin.to(device)

    def forward(
        self,
        input_ids: Tensor,
        positions: Tensor,
        kv_cache: Tensor,
        meta: AttentionMetadata,
        logits_index: Tensor,
    ) -> Tensor:
        """Logits [len(logits_index), vocab] for the flat rows that sample a token."""
        x = self.model.embed_tokens(input_ids)
        cos = self.rope_cos[positions].unsqueeze(1)
        sin = self.rope_sin[positions].unsqueeze(1)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, kv_cache[i], meta)
        x = self.model.norm(x[logits_index])
        return self.lm_head(x)


@contextmanager
def uninitialized() -> Iterator[None]:
    """Modules built inside keep uninitialised weights, for a checkpoint to replace: random
    init of 135M parameters is wasted work, and the meta device's first use imports
    torch._dynamo (about 4 s). Loading happens once, before serving, on one thread."""
    names = ("kaiming_uniform_", "uniform_", "normal_")
    saved = {name: getattr(nn.init, name) for name in names}
    for name in names:
        setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


def init_random_(model: LlamaForCausalLM, seed: int) -> None:
    """Seeded weights scaled so hidden states keep unit size and logits are far from ties.

    std 1/sqrt(fan_in) keeps every layer's contribution comparable to the residual, so the
    output depends on the whole prompt; the head's larger scale spreads logits over several
    units, so greedy decoding is decisive rather than a coin flip between near-equal tokens.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * (4.0 / math.sqrt(p.shape[1])))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
