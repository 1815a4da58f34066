"""Tokenizers behind the `inference.backend.Tokenizer` protocol.

The built-in byte tokenizer needs no files, so the default engine runs with nothing downloaded;
checkpoints bring a `tokenizer.json` read by the `tokenizers` package.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizerImpl

log = logging.getLogger(__name__)

BOS_ID = 256
EOS_ID = 257


def simple_chat_template(messages: list[dict[str, str]]) -> str:
    """A role-tagged transcript ending with an open assistant turn."""
    parts = [f"<|{m.get('role', 'user')}|>\n{m.get('content', '')}\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


class ByteTokenizer:
    """256 byte tokens plus BOS and EOS: every string round-trips, no vocabulary file needed."""

    vocab_size = 258
    bos_token_id = BOS_ID
    eos_token_id: int | None = EOS_ID

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({EOS_ID})

    def encode(self, text: str) -> list[int]:
        return [BOS_ID, *text.encode("utf-8")]

    def decode(self, token_ids: list[int]) -> str:
        return bytes(t for t in token_ids if t < 256).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return simple_chat_template(messages)


class HFTokenizer:
    """A checkpoint's tokenizer.json; EOS ids from generation_config.json, else config.json."""

    def __init__(self, path: Path):
        self._tok = HFTokenizerImpl.from_file(str(path / "tokenizer.json"))
        eos = _read_eos(path)
        self.eos_token_id: int | None = eos[0] if eos else None
        self._eos = frozenset(eos)
        self._template = _read_chat_template(path)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=True).ids

    def decode(self, token_ids: list[int]) -> str:
        return self._tok.decode(token_ids, skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        if self._template is None:
            return simple_chat_template(messages)
        import jinja2  # only when a checkpoint ships a Jinja chat template (torch depends on it)

        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
        try:
            # bos_token is left out: the tokenizer's post-processor adds BOS when encoding.
            return env.from_string(self._template).render(
                messages=messages, add_generation_prompt=True, bos_token="", eos_token=""
            )
        except jinja2.TemplateError as exc:
            log.warning("chat template failed (%s); using the plain template", exc)
            return simple_chat_template(messages)


def _read_eos(path: Path) -> list[int]:
    for name in ("generation_config.json", "config.json"):
        file = path / name
        if not file.exists():
            continue
        value = json.loads(file.read_text()).get("eos_token_id")
        if value is None:
            continue
        return [int(v) for v in value] if isinstance(value, list) else [int(value)]
    return []


def _read_chat_template(path: Path) -> str | None:
    file = path / "tokenizer_config.json"
    if not file.exists():
        return None
    template = json.loads(file.read_text()).get("chat_template")
    return template if isinstance(template, str) else None
