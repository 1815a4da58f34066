"""A plain, non-paged, full-recompute Llama forward written from the weight tensors alone.

It shares no code with the engine's model, so agreement checks the paged attention, the block
tables and the checkpoint loader, not just that the engine agrees with itself.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _rms(x: Tensor, w: Tensor, eps: float) -> Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x: Tensor, theta: float) -> Tensor:
    """x [heads, T, d] rotated in the rotate-half layout."""
    t, d = x.shape[1], x.shape[2]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=x.dtype) / d)
    ang = torch.outer(torch.arange(t, dtype=x.dtype), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat((-x2, x1), -1) * sin


def all_logits(w: dict[str, Tensor], cfg: dict, token_ids: list[int]) -> Tensor:
    """Logits [T, vocab] of every position, in one causal pass."""
    h, nh, kvh = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or h // nh
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    x = w["model.embed_tokens.weight"][torch.tensor(token_ids)]
    t = x.shape[0]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = _rms(x, w[p + "input_layernorm.weight"], eps)
        q = (a @ w[p + "self_attn.q_proj.weight"].T).view(t, nh, d).transpose(0, 1)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).view(t, kvh, d).transpose(0, 1)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).view(t, kvh, d).transpose(0, 1)
        q, k = _rope(q, theta), _rope(k, theta)
        k = k.repeat_interleave(nh // kvh, dim=0)
        v = v.repeat_interleave(nh // kvh, dim=0)
        scores = (q @ k.transpose(1, 2)) / d**0.5
        att = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        x = x + att.transpose(0, 1).reshape(t, nh * d) @ w[p + "self_attn.o_proj.weight"].T
        m = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(m @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (gate * (m @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    x = _rms(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def greedy_choices(
    w: dict[str, Tensor], cfg: dict, prompt: list[int], tokens: list[int]
) -> list[int]:
    """The reference's greedy pick after the prompt and after each prefix of `tokens`, from one
    pass over prompt + tokens: equal to `tokens` exactly when greedy decoding from the
    prompt would produce them (each step's input is the previous step's pick), at the cost
    of one forward instead of len(tokens) (what makes a 135M-parameter model affordable)."""
    logits = all_logits(w, cfg, prompt + tokens[:-1])
    return [int(t) for t in logits[len(prompt) - 1 :].argmax(-1)]
