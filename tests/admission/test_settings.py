"""Admission's settings are flags and INFERWATCH_* variables like every part's, and the help of
every one renders (argparse formats help with %, so a stray percent sign breaks --help)."""

from __future__ import annotations

import argparse

import pytest

from inference.settings import Settings
from inferwatch.commands import serve


def test_admission_is_a_part_of_the_settings() -> None:
    settings = Settings.resolve(
        {"degradation_dwell_seconds": 2.0},
        env={"INFERWATCH_ADMISSION_MODE": "fifo", "INFERWATCH_ADMIN_TOKEN_FILE": "/run/t"},
    )
    assert settings.admission.admission_mode == "fifo"
    assert settings.admission.admin_token_file == "/run/t"
    assert settings.admission.degradation_dwell_seconds == 2.0
    assert Settings().admission.admission_mode == "adaptive"


def test_every_flag_has_a_help_that_renders() -> None:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    text = parser.format_help()
    for flag in (
        "--admission-mode",
        "--admin-token-file",
        "--api-keys-file",
        "--degradation-levels-file",
        "--concurrency-tolerance",
        "--breaker-window",
    ):
        assert flag in text  # fmt: skip
    args = parser.parse_args(["--admission-mode", "off", "--max-inflight-tokens", "4096"])
    assert serve.settings_from_args(args).admission.max_inflight_tokens == 4096


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="admission_mode"):
        Settings.resolve(env={"INFERWATCH_ADMISSION_MODE": "magic"})
    with pytest.raises(ValueError, match="cooldown"):
        Settings.resolve({"degradation_cooldown_seconds": 1.0, "degradation_dwell_seconds": 5.0})
