"""`inferwatch serve` as a real subprocess, and flag > environment > default for settings."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inference.serve_cli import add_arguments, settings_from_args
from inference.settings import Settings

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
    assert settings.max_waiting == 7  # environment
    assert settings.log_prompts is True and settings.telemetry is False
    assert settings.model_name == "m" and settings.max_num_seqs == Settings().max_num_seqs


def test_bad_environment_value_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="INFERWATCH_PORT"):
        Settings.resolve({}, env={"INFERWATCH_PORT": "eighty"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_subprocess_answers_and_logs_json_lines() -> None:
    port = _free_port()
    env = {
        **os.environ,
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
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service did not become ready"
            time.sleep(0.2)
        assert httpx.get(base + "/health").status_code == 200
        assert httpx.get(base + "/v1/models").json()["data"][0]["id"] == "from-env"
        r = httpx.post(
            base + "/v1/completions",
            json={"model": "from-env", "prompt": "private words", "max_tokens": 2},
            timeout=30,
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert len(lines) == len(stderr.splitlines()), stderr  # every log line is one JSON object
    finished = [e for e in lines if e["msg"] == "request finished"]
    assert len(finished) == 1 and finished[0]["outcome"] == "completed"
    assert finished[0]["request_id"] == r.headers["x-request-id"]
    assert "private words" not in stderr
