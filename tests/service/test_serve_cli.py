"""`inferwatch serve` as a real subprocess, and flag > environment > default for settings."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from inference.engine import EngineConfig
from inference.settings import Settings
from inferwatch.commands import engine as engine_command
from inferwatch.commands.serve import add_arguments, freeze_startup_heap, settings_from_args
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
INFERWATCH = Path(sys.executable).parent / "inferwatch"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flag_wins_over_environment_which_wins_over_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INFERWATCH_PORT", "9001")
    monkeypatch.setenv("INFERWATCH_MAX_WAITING", "7")
    monkeypatch.setenv("INFERWATCH_LOG_PROMPTS", "true")
    monkeypatch.setenv("INFERWATCH_TELEMETRY", "0")
    settings = settings_from_args(_args("--port", "9002", "--model-name", "m"))
    assert settings.port == 9002  # flag
    assert settings.engine.max_waiting == 7  # environment
    assert settings.log_prompts is True and settings.telemetry is False
    assert settings.engine.model_name == "m"
    assert settings.engine.max_num_seqs == Settings().engine.max_num_seqs


# A non-default value for every EngineConfig field, as a flag and as a variable would give it.
ENGINE_VALUES: dict[str, tuple[str, object]] = {
    "model": ("tiny", "tiny"),
    "model_path": ("/models/x", "/models/x"),
    "chat_template": ("/templates/chatml.jinja", "/templates/chatml.jinja"),
    "quantization": ("int8", "int8"),
    "device": ("cpu", "cpu"),
    "dtype": ("bfloat16", "bfloat16"),
    "num_kv_blocks": ("99", 99),
    "block_size": ("8", 8),
    "max_num_seqs": ("5", 5),
    "max_num_batched_tokens": ("256", 256),
    "max_waiting": ("9", 9),
    "enable_prefix_caching": ("0", False),
    "prefix_cache_scope": ("tenant", "tenant"),
    "seed": ("3", 3),
    "model_name": ("named", "named"),
    "num_threads": ("1", 1),
    "max_model_len": ("512", 512),
    "gpu_memory_fraction": ("0.25", 0.25),
}


def test_every_engine_field_is_a_flag_and_a_variable() -> None:
    names = [f.name for f in dataclasses.fields(EngineConfig)]
    assert sorted(names) == sorted(ENGINE_VALUES), "a new EngineConfig field needs a case here"
    argv: list[str] = []
    for name, (raw, _) in ENGINE_VALUES.items():
        if name == "enable_prefix_caching":
            argv.append("--no-enable-prefix-caching")
        else:
            argv += ["--" + name.replace("_", "-"), raw]
    from_flags = settings_from_args(_args(*argv)).engine
    env = {"INFERWATCH_" + name.upper(): raw for name, (raw, _) in ENGINE_VALUES.items()}
    from_env = Settings.resolve({}, env=env).engine
    for name, (_, expected) in ENGINE_VALUES.items():
        assert getattr(from_flags, name) == expected, name
        assert getattr(from_env, name) == expected, name


def test_engine_command_shares_the_engine_flags() -> None:
    serve, engine = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_arguments(serve)
    engine_command.add_arguments(engine)
    flags = {a.option_strings[0] for a in engine._actions if a.option_strings}
    serve_flags = {a.option_strings[0] for a in serve._actions if a.option_strings}
    engine_only = {"-h", "--requests", "--max-tokens"}
    assert flags - engine_only <= serve_flags
    assert "--max-num-batched-tokens" in flags and "--no-enable-prefix-caching" in flags


def test_bad_environment_value_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="INFERWATCH_PORT"):
        Settings.resolve({}, env={"INFERWATCH_PORT": "eighty"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_subprocess_answers_and_logs_json_lines() -> None:
    port = _free_port()
    env = {
        **os.environ,
        "INFERWATCH_MODEL": "tiny",
        "INFERWATCH_MODEL_NAME": "from-env",
        "INFERWATCH_NUM_KV_BLOCKS": "128",
        "INFERWATCH_PORT": "1",  # the flag below wins
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    proc = subprocess.Popen(
        [str(INFERWATCH), "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: on a loaded 2-core machine the start (imports, model) can take a minute.
        assert wait_until(lambda: proc.poll() is not None or _ready(base), timeout=180)
        assert proc.poll() is None, proc.communicate()
        assert httpx.get(base + "/health").status_code == 200
        assert httpx.get(base + "/v1/models").json()["data"][0]["id"] == "from-env"
        r = httpx.post(
            base + "/v1/completions",
            json={"model": "from-env", "prompt": "private words", "max_tokens": 2},
            timeout=120,
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=90)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert len(lines) == len(stderr.splitlines()), stderr  # every log line is one JSON object
    finished = [e for e in lines if e["msg"] == "request finished"]
    assert len(finished) == 1 and finished[0]["outcome"] == "completed"
    assert finished[0]["request_id"] == r.headers["x-request-id"]
    assert "private words" not in stderr


def test_startup_heap_is_frozen_out_of_later_full_collections() -> None:
    """What exists when `inferwatch serve` starts listening is never walked again by the
    collector; what serving makes afterwards still is (and garbage of it is still freed)."""
    built_at_startup: dict[str, list[int]] = {"weights": [1]}
    try:
        freeze_startup_heap()
        made_while_serving: dict[str, list[int]] = {"request": [2]}
        tracked = {id(o) for o in gc.get_objects()}
        assert gc.get_freeze_count() > 0
        assert id(built_at_startup) not in tracked
        assert id(made_while_serving) in tracked
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # the cycle made after the freeze is still collected
    finally:
        gc.unfreeze()
