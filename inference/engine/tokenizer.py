"""Tokenizers behind the `inference.backend.Tokenizer` protocol.

The tiny model's byte tokenizer needs no files; real models bring a `tokenizers` tokenizer (a
checkpoint's tokenizer.json, or one built from GGUF metadata) and their own chat template.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer

from .chat_template import ChatPrompt, ChatTemplate, MissingChatTemplateError

BOS_ID = 256
EOS_ID = 257


def simple_chat_template(messages: list[dict[str, str]]) -> str:
    """The tiny model's template (it has no real one, being random): role-tagged turns ending
    with an open assistant turn. Never used for a checkpoint."""
    parts = [f"<|{m.get('role', 'user')}|>\n{m.get('content', '')}\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


class ByteTokenizer:
    """256 byte tokens plus BOS and EOS: every string round-trips, no vocabulary file needed."""

    vocab_size = 258
    bos_token_id = BOS_ID
    eos_token_id: int | None = EOS_ID
    chat_template_source = "the tiny model's simple role-tagged template (it has no real one)"

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
    """A `tokenizers.Tokenizer` with the model's stop ids, special token strings and template."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        eos_token_ids: Iterable[int],
        chat_template: ChatTemplate | None,
        bos_token: str = "",
        eos_token: str = "",
    ):
        self._tok = tokenizer
        eos = list(eos_token_ids)
        self.eos_token_id: int | None = eos[0] if eos else None
        self._eos = frozenset(eos)
        self.chat_template = chat_template
        self.bos_token = bos_token
        self.eos_token = eos_token

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def chat_template_source(self) -> str:
        return self.chat_template.source if self.chat_template else "none"

    def encode(self, text: str) -> list[int]:
        # A rendered chat already holds its BOS and turn markers; adding BOS again would make
        # a prompt the model never saw in training.
        add_special = not isinstance(text, ChatPrompt)
        return self._tok.encode(text, add_special_tokens=add_special).ids

    def decode(self, token_ids: list[int]) -> str:
        return self._tok.decode(token_ids, skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        if self.chat_template is None:
            raise MissingChatTemplateError()
        return self.chat_template.render(messages, self.bos_token, self.eos_token)
