"""Int8 weights through PyTorch's own dynamic quantization, and the bytes weights take.

`torch.ao.quantization.quantize_dynamic` swaps the linear layers for fbgemm's int8 kernels:
weights quantized once, per output channel, activations at each call with one scale for the
whole flattened batch, so a request's output can depend on what it is batched with. Two layers
stay float32: `down_proj`, whose input (the gated product) carries the activation outliers a
single 8-bit scale flattens, and the LM head, whose argmax over 49152 logits is the greedy
token. Quantizing them too made SmolLM2's very first greedy token differ from float32's (5% of
tokens equal); without them the answers start the same (23% of tokens equal over 32 tokens,
~2x float32's speed on 2 busy AVX2 cores). Deprecated in favour of torchao, whose int8 paths are
slower than float32 on this CPU (no fused kernels without torch.compile), it still works in
torch 2.13: CPU only, float32 models.
"""

from __future__ import annotations

import itertools
import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

FLOAT32_LAYERS = ("down_proj", "lm_head")


def quantize_int8(model: nn.Module) -> None:
    """In place: linear layers to dynamically quantized int8 ones."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # The deprecation notices (torchao is the successor) say nothing about this use.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        spec = {
            name: per_channel_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and not name.endswith(FLOAT32_LAYERS)
        }
        quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def weight_bytes(model: nn.Module) -> int:
    """Resident bytes of the weights: each storage once (tied tensors share one), plus the
    packed int8 weights that quantized layers keep outside their parameters."""
    seen: set[int] = set()
    total = 0
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    for module in model.modules():
        if isinstance(module, DynamicQuantizedLinear):
            weight, bias = module._weight_bias()
            total += weight.numel() * weight.element_size()
            if weight.qscheme() == torch.per_channel_affine:
                total += weight.q_per_channel_scales().nbytes
                total += weight.q_per_channel_zero_points().nbytes
            total += 0 if bias is None else bias.numel() * bias.element_size()
    return total
