"""The tokenizer a GGUF file describes (tokens, merges, token types, pre-tokenizer name),
rebuilt with the `tokenizers` library as the original tokenizer.json had it.

Only GPT-2-style byte-level BPE (`tokenizer.ggml.model` gpt2) is built; pre-tokenizer names
follow llama.cpp's: `gpt2` is the GPT-2 split, `smollm` (and the StarCoder family that shares
its rules) first splits every digit on its own.
"""

from __future__ import annotations

from collections.abc import Callable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from .chat_template import ChatTemplate
from .gguf_checkpoint import GGUFFile
from .tokenizer import HFTokenizer

CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types that are added tokens, not BPE pieces


def _gpt2() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def _digits_then_gpt2() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _gpt2()])


PRE_TOKENIZERS: dict[str, Callable[[], pre_tokenizers.PreTokenizer]] = {
    "gpt2": _gpt2,
    "smollm": _digits_then_gpt2,
    "starcoder": _digits_then_gpt2,
    "refact": _digits_then_gpt2,
    "codeshell": _digits_then_gpt2,
}


def gguf_tokenizer(gguf: GGUFFile, chat_template: ChatTemplate | None) -> HFTokenizer:
    """The file's tokenizer with its stop ids and chat template (the operator's, if given)."""
    where = gguf.path
    kind = gguf.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"{where}: tokenizer {kind!r} is not supported (gpt2-style BPE is)")
    pre = gguf.get("tokenizer.ggml.pre", "gpt2")
    if pre not in PRE_TOKENIZERS:
        known = ", ".join(PRE_TOKENIZERS)
        raise ValueError(f"{where}: pre-tokenizer {pre!r} is not supported ({known} are)")
    tokens: list[str] = gguf.get("tokenizer.ggml.tokens")
    types: list[int] = gguf.get("tokenizer.ggml.token_type", [1] * len(tokens))
    merges = [tuple(m.split(" ")) for m in gguf.get("tokenizer.ggml.merges")]
    if any(len(m) != 2 for m in merges):
        raise ValueError(f"{where}: tokenizer.ggml.merges holds a merge that is not a pair")
    vocab = {token: i for i, token in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tok.decoder = decoders.ByteLevel()
    added = [
        AddedToken(tokens[i], special=t == CONTROL, normalized=False)
        for i, t in enumerate(types)
        if t in (CONTROL, USER_DEFINED)
    ]
    tok.add_tokens([a for a in added if not a.special])
    tok.add_special_tokens([a for a in added if a.special])

    bos_id = gguf.get("tokenizer.ggml.bos_token_id", None)
    eos_id = gguf.get("tokenizer.ggml.eos_token_id", None)
    if gguf.get("tokenizer.ggml.add_bos_token", False) and bos_id is not None:
        bos = tokens[bos_id]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    stop = [i for i in (eos_id, gguf.get("tokenizer.ggml.eot_token_id", None)) if i is not None]
    if chat_template is None:
        text = gguf.get("tokenizer.chat_template", None)
        chat_template = ChatTemplate(text, f"{where} (tokenizer.chat_template)") if text else None
    return HFTokenizer(
        tok,
        dict.fromkeys(stop),
        chat_template,
        bos_token=tokens[bos_id] if bos_id is not None else "",
        eos_token=tokens[eos_id] if eos_id is not None else "",
    )
