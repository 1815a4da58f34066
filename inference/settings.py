"""Service settings, filled from flags, then INFERWATCH_<NAME> variables, then defaults.

A flag given on the command line wins over the environment, so a container image can set
defaults in its environment and an operator can still override one value by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "INFERWATCH_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    model_path: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    num_kv_blocks: int | None = None
    max_num_seqs: int = 64
    max_waiting: int = 256
    model_name: str | None = None
    log_prompts: bool = False
    telemetry: bool = True
    log_level: str = "info"
    seed: int = 0

    @property
    def max_in_flight(self) -> int:
        """Requests the engine holds at once (running + queued): the admission limit."""
        return self.max_num_seqs + self.max_waiting

    @classmethod
    def resolve(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from explicit values (None = not given), then the environment, then defaults."""
        overrides = overrides or {}
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            given = overrides.get(f.name)
            if given is not None:
                values[f.name] = given
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, f.default)
        return cls(**values)


def _parse(name: str, raw: str, default: Any) -> Any:
    raw = raw.strip()
    if isinstance(default, bool):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a boolean")
    if isinstance(default, int) or name == "num_kv_blocks":
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not an integer") from None
    return raw or default
