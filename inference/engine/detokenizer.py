"""Streaming text for one request: whole characters only, stop strings cut and held back."""

from __future__ import annotations

from inference.backend import Tokenizer

# Prompt tokens decoded as context so tokenizers that drop a leading space at the start of a
# decode (SentencePiece) still produce the right first characters.
_CONTEXT_TOKENS = 6


class IncrementalDetokenizer:
    """Decodes a growing token list without re-decoding it all (vLLM's offset scheme).

    Text is released only when it ends in a complete character (no U+FFFD from a partial
    UTF-8 sequence) and cannot be the beginning of a stop string.
    """

    def __init__(self, tokenizer: Tokenizer, prompt_token_ids: list[int], stop: tuple[str, ...]):
        self._tokenizer = tokenizer
        self._ids = list(prompt_token_ids[-_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._stop = tuple(s for s in stop if s)
        self.text = ""  # decoded output so far, cut at a stop string if one was found
        self._emitted = 0
        self.stopped = False

    def add_token(self, token_id: int) -> None:
        """Decode one more token; sets `stopped` when the text now contains a stop string."""
        self._ids.append(token_id)
        prefix = self._tokenizer.decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._tokenizer.decode(self._ids[self._prefix_offset :])
        if len(full) <= len(prefix) or full.endswith("\ufffd"):
            return  # an incomplete character: wait for its remaining bytes
        self.text += full[len(prefix) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        self._check_stop()

    def flush(self) -> None:
        """At the end, keep whatever partial character is left (as U+FFFD)."""
        prefix = self._tokenizer.decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._tokenizer.decode(self._ids[self._prefix_offset :])
        if len(full) > len(prefix):
            self.text += full[len(prefix) :]
            self._prefix_offset = self._read_offset = len(self._ids)
            self._check_stop()

    def take(self, final: bool) -> str:
        """The text not handed out yet, minus a tail that may still become a stop string."""
        end = len(self.text) if final or self.stopped else len(self.text) - self._held()
        delta = self.text[self._emitted : end]
        self._emitted = max(self._emitted, end)
        return delta

    def _check_stop(self) -> None:
        if self.stopped or not self._stop:
            return
        hits = [i for i in (self.text.find(s, self._emitted) for s in self._stop) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def _held(self) -> int:
        """Length of the longest text suffix that is a proper prefix of some stop string."""
        best = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(self.text) - self._emitted), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        return best
