"""Chat templates: found wherever a checkpoint keeps one, rendered as transformers renders them.

A chat model without a template gets no made-up one: /v1/chat/completions answers 400 (an
operator can name a file with `--chat-template`). Sources, first found wins, in transformers 5's
order: chat_template.jinja, chat_template.json, tokenizer_config.json (a string, or the list of
named templates, whose "default" is used); a GGUF file keeps it in `tokenizer.chat_template`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from inference.backend import InvalidRequestError


class MissingChatTemplateError(InvalidRequestError):
    """The model has no chat template: a 400 naming the way out (the API reads param/code)."""

    param = "messages"
    code = "chat_template_missing"

    def __init__(self) -> None:
        super().__init__(
            "this model has no chat template: use /v1/completions with your own prompt format, "
            "or start the server with --chat-template FILE"
        )


class ChatPrompt(str):
    """Text a chat template rendered: its special tokens (BOS included) are already in it, so
    it is encoded without adding any, as transformers' apply_chat_template does."""


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _environment() -> ImmutableSandboxedEnvironment:
    """The names transformers gives templates (raise_exception, strftime_now, tojson)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


@dataclass(frozen=True)
class ChatTemplate:
    text: str
    source: str  # where it came from, for the startup log
    _compiled: jinja2.Template = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = _environment().from_string(self.text)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"{self.source}: chat template does not parse: {exc}") from None
        object.__setattr__(self, "_compiled", compiled)

    def render(self, messages: list[dict[str, str]], bos_token: str, eos_token: str) -> ChatPrompt:
        try:
            text = self._compiled.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=bos_token,
                eos_token=eos_token,
            )
        except jinja2.TemplateError as exc:  # raise_exception(...): e.g. roles must alternate
            raise InvalidRequestError(f"the chat template refused these messages: {exc}") from None
        return ChatPrompt(text)


def template_file(path: Path) -> ChatTemplate:
    """`--chat-template FILE`: a Jinja file, or a chat_template.json-style JSON file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise OSError(f"{path}: chat template unreadable ({exc.strerror or exc})") from None
    if path.suffix == ".json":
        found = _from_json(path, text, "chat_template")
        assert found is not None  # required: a JSON file without one raised
        return found
    return ChatTemplate(text, str(path))


def find_chat_template(folder: Path) -> ChatTemplate | None:
    """The checkpoint folder's template, or None when it keeps none."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return ChatTemplate(jinja_file.read_text(), str(jinja_file))
    for name in ("chat_template.json", "tokenizer_config.json"):
        file = folder / name
        if file.is_file():
            found = _from_json(file, file.read_text(), "chat_template", required=False)
            if found is not None:
                return found
    return None


def _from_json(file: Path, text: str, key: str, required: bool = True) -> ChatTemplate | None:
    try:
        value = json.loads(text).get(key)
    except (ValueError, AttributeError):
        raise ValueError(f"{file}: not a JSON object") from None
    if isinstance(value, list):  # [{"name": "default", "template": ...}, {"name": "tool_use"...}]
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        value = named.get("default")
        if value is None:
            raise ValueError(f"{file}: {key} lists no template named 'default'")
    if isinstance(value, str):
        return ChatTemplate(value, f"{file} ({key})")
    if value is None and not required:
        return None
    raise ValueError(f"{file}: {key} is not a template string")
