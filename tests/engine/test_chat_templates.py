"""The chat template is found wherever a checkpoint keeps it (transformers 5 writes
chat_template.jinja) and gives the template's own prompt ids, as transformers' apply_chat_template
makes them (rendered with the real BOS text, encoded without adding special tokens); a checkpoint
without one answers /v1/chat/completions with a clear 400. Small checkpoints; about 5 s."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import jinja2
import pytest
from tokenizers import Tokenizer

from inference.engine import EngineConfig, build_engine
from tests.support.checkpoints import CHAT_TEMPLATE, write_hf_checkpoint
from tests.support.service import serve

# As a Llama 3 template does: the template writes BOS itself.
TEMPLATE = "{{ bos_token }}" + CHAT_TEMPLATE
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "why does the lazy dog rise?"},
]


def _transformers_ids(folder: Path) -> list[int]:
    """What transformers' apply_chat_template(tokenize=True) gives for MESSAGES."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(TEMPLATE).render(
        messages=MESSAGES, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return tok.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize(
    ("layout", "source"),
    [
        ("jinja", "chat_template.jinja"),
        ("json", "chat_template.json (chat_template)"),
        ("tokenizer_config", "tokenizer_config.json (chat_template)"),
        ("list", "tokenizer_config.json (chat_template)"),
    ],
)
def test_template_gives_its_own_prompt_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, layout: str, source: str
) -> None:
    folder = tmp_path / layout
    write_hf_checkpoint(folder, template=layout, template_text=TEMPLATE)
    with caplog.at_level(logging.INFO, logger="inference.engine.loader"):
        engine = build_engine(EngineConfig(model_path=str(folder), num_kv_blocks=16))
    tok = engine.tokenizer
    ids = tok.encode(tok.apply_chat_template(MESSAGES))
    expected = _transformers_ids(folder)
    assert ids == expected
    assert ids[0] == 0 and ids[1] != 0  # one BOS: the template's, none added on top
    (record,) = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert record.fields["chat_template"] == f"{folder / source}"  # type: ignore[attr-defined]


def test_jinja_file_wins_over_tokenizer_config(tmp_path: Path) -> None:
    """transformers 5's own order: chat_template.jinja first."""
    folder = tmp_path / "both"
    write_hf_checkpoint(folder, template="tokenizer_config", template_text="stale")
    (folder / "chat_template.jinja").write_text(TEMPLATE)
    engine = build_engine(EngineConfig(model_path=str(folder), num_kv_blocks=16))
    assert engine.tokenizer.apply_chat_template(MESSAGES).startswith("<s>[system] be brief")


def test_no_template_is_a_clear_400_and_completions_still_work(tmp_path: Path) -> None:
    folder = tmp_path / "base-model"
    write_hf_checkpoint(folder, template=None)
    engine = build_engine(EngineConfig(model_path=str(folder), num_kv_blocks=32, max_num_seqs=4))
    assert engine.tokenizer.chat_template_source == "none"
    thread, _, _, _ = serve(engine)
    with thread as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "base-model", "messages": MESSAGES, "max_tokens": 3},
        )
        completion = client.post(
            "/v1/completions", json={"model": "base-model", "prompt": "the fox", "max_tokens": 3}
        )
    assert chat.status_code == 400, chat.text
    error = chat.json()["error"]
    assert error["code"] == "chat_template_missing" and error["param"] == "messages"
    assert "no chat template" in error["message"] and "--chat-template" in error["message"]
    assert completion.status_code == 200


def test_template_refusing_messages_is_a_400_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "strict"
    strict = (
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
    )
    write_hf_checkpoint(folder, template="jinja", template_text=strict + TEMPLATE)
    engine = build_engine(EngineConfig(model_path=str(folder), num_kv_blocks=16))
    from inference.backend import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="first must be user"):
        engine.tokenizer.apply_chat_template(MESSAGES)
