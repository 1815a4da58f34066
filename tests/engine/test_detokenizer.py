"""Streaming text: whole UTF-8 characters only, stop strings cut and held back."""

from __future__ import annotations

from inference.engine.detokenizer import IncrementalDetokenizer
from inference.engine.tokenizer import ByteTokenizer

TOK = ByteTokenizer()


def _stream(text: str, stop: tuple[str, ...] = ()) -> tuple[list[str], IncrementalDetokenizer]:
    detok = IncrementalDetokenizer(TOK, TOK.encode("prompt é"), stop)
    deltas = []
    for b in text.encode("utf-8"):
        detok.add_token(b)
        deltas.append(detok.take(final=False))
        if detok.stopped:
            break
    detok.flush()
    deltas.append(detok.take(final=True))
    return deltas, detok


def test_multibyte_characters_are_emitted_whole() -> None:
    text = "héllo 🌍 wörld ✓"
    deltas, _ = _stream(text)
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert "🌍" in deltas  # four bytes in, one character out, in one piece
    assert deltas.count("") >= 3 + 1 + 2  # bytes held while a character was incomplete


def test_text_that_may_start_a_stop_string_is_held() -> None:
    deltas, detok = _stream("abc STOxyz STOP tail", stop=("STOP",))
    assert "".join(deltas) == "abc STOxyz "
    assert detok.stopped
    emitted = ""
    for d in deltas:
        emitted += d
        assert "STOP" not in emitted
    # "S", "ST", "STO" were held until "x" showed they were not the stop string.
    assert any(d.endswith("STOx") for d in deltas)


def test_stop_string_with_multibyte_characters() -> None:
    deltas, detok = _stream("price: 5€ or 6€ each", stop=("6€",))
    assert "".join(deltas) == "price: 5€ or "
    assert detok.stopped


def test_earliest_of_several_stop_strings_wins() -> None:
    deltas, _ = _stream("one two three", stop=("three", "two"))
    assert "".join(deltas) == "one "


def test_invalid_bytes_are_flushed_at_the_end() -> None:
    detok = IncrementalDetokenizer(TOK, [256], ())
    for b in b"ok\xe2\x82":  # a truncated three-byte character
        detok.add_token(b)
    assert detok.take(final=False) == "ok"
    detok.flush()
    assert detok.take(final=True) == "\ufffd"
