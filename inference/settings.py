"""Service settings: the server's own fields plus one config object per part, each default
written once, in the part's own dataclass.

Values come from flags, then INFERWATCH_<NAME> variables, then the dataclass defaults. Field
names are unique across parts, so each has one flag (`--max-num-seqs`) and one variable
(`INFERWATCH_MAX_NUM_SEQS`). A flag given on the command line wins over the environment, so a
container image can set defaults in its environment and an operator can still override one
value by hand. Help text and choices live in each field's `metadata`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.admission.config import AdmissionConfig
from inference.engine.config import EngineConfig
from inference.upstream.config import UpstreamConfig

ENV_PREFIX = "INFERWATCH_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "bind address"})
    port: int = field(default=8000, metadata={"help": "port"})
    log_prompts: bool = field(
        default=False, metadata={"help": "put prompt and completion text in logs and spans"}
    )
    telemetry: bool = field(
        default=True, metadata={"help": "metrics observation, tracing and instrumentation"}
    )
    log_level: str = field(
        default="info", metadata={"help": "log level", "choices": ("debug", "info", "warning")}
    )
    max_body_bytes: int = field(
        default=4 * 2**20, metadata={"help": "largest request body (413 past it)"}
    )
    max_header_bytes: int = field(
        default=32 * 2**10, metadata={"help": "largest request head (431 past it)"}
    )
    read_timeout: float = field(
        default=30.0, metadata={"help": "seconds a request body may take to arrive (408)"}
    )
    trusted_proxies: str = field(
        default="",
        metadata={"help": "comma-separated addresses whose X-Forwarded-For is believed "
                  "(default: none)"},
    )  # fmt: skip
    shutdown_grace_seconds: float = field(
        default=25.0,
        metadata={"help": "on SIGTERM, how long accepted requests may take to finish (keep it "
                  "under the pod's terminationGracePeriodSeconds)"},
    )  # fmt: skip
    span_flush_seconds: float = field(
        default=3.0, metadata={"help": "longest wait for the trace exporter at exit"}
    )
    engine: EngineConfig = field(default_factory=EngineConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    upstreams: UpstreamConfig = field(default_factory=UpstreamConfig)

    @property
    def max_in_flight(self) -> int:
        """Requests the engine holds at once (running + queued): the admission limit."""
        return self.engine.max_num_seqs + self.engine.max_waiting

    @classmethod
    def resolve(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from explicit values by field name (None = not given), then the
        environment, then defaults. Names of every part's fields are accepted flat."""
        overrides = overrides or {}
        env = os.environ if env is None else env
        unknown = set(overrides) - set(option_names())
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        parts = {f.name: resolve_config(f.type_class, overrides, env) for f in _part_fields()}
        own = _given(cls, overrides, env, skip=set(parts))
        return cls(**own, **parts)


class _PartField(typing.NamedTuple):
    name: str
    type_class: type


def _part_fields() -> list[_PartField]:
    """Settings fields that hold a part's config dataclass (engine, later admission, ...)."""
    hints = typing.get_type_hints(Settings)
    return [
        _PartField(f.name, hints[f.name])
        for f in dataclasses.fields(Settings)
        if dataclasses.is_dataclass(hints[f.name])
    ]


def option_fields() -> list[tuple[dataclasses.Field[Any], type]]:
    """(field, its type) of every settable option, the server's own first, then each part's."""
    parts = {p.name for p in _part_fields()}
    hints = typing.get_type_hints(Settings)
    out = [(f, hints[f.name]) for f in dataclasses.fields(Settings) if f.name not in parts]
    for part in _part_fields():
        out += config_fields(part.type_class)
    return out


def option_names() -> list[str]:
    return [f.name for f, _ in option_fields()]


def config_fields(cls: type) -> list[tuple[dataclasses.Field[Any], type]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def resolve_config(cls: type, overrides: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """One part's config dataclass from the flat overrides and the environment."""
    return cls(**_given(cls, overrides, env))


def _given(
    cls: type, overrides: Mapping[str, Any], env: Mapping[str, str], skip: set[str] | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f, type_ in config_fields(cls):
        if skip and f.name in skip:
            continue
        given = overrides.get(f.name)
        if given is not None:
            values[f.name] = tuple(given) if is_list(type_) else given
            continue
        raw = env.get(env_name(f.name), "").strip()
        if raw:  # unset or empty: the default
            values[f.name] = parse_value(f.name, raw, type_)
    return values


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def base_type(type_: Any) -> tuple[type, bool]:
    """(the scalar type, whether None is allowed) of `int`, `int | None`, ..."""
    if isinstance(type_, types.UnionType) or typing.get_origin(type_) is typing.Union:
        args = [a for a in typing.get_args(type_) if a is not type(None)]
        return args[0], True
    return type_, False


def is_list(type_: Any) -> bool:
    """A repeatable option (`tuple[str, ...]`): one flag per value, or a comma-separated
    variable."""
    return typing.get_origin(base_type(type_)[0]) is tuple


def parse_value(name: str, raw: str, type_: Any) -> Any:
    """A non-empty environment string as the field's type."""
    kind, _ = base_type(type_)
    where = f"{env_name(name)}={raw!r}"
    if is_list(type_):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{where} is not a boolean")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ValueError(f"{where} is not {noun}") from None
    return raw
