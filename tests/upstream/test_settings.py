"""`--upstream` is a setting like every other: a repeatable flag and a comma-separated
INFERWATCH_UPSTREAM variable, the flag winning; a URL that is not http(s) is refused."""

from __future__ import annotations

import argparse

import pytest

from inference.settings import Settings, option_fields
from inferwatch.commands.options import add_options, given


def parse(argv: list[str], env: dict[str, str]) -> Settings:
    parser = argparse.ArgumentParser()
    add_options(parser, option_fields())
    return Settings.resolve(given(parser.parse_args(argv), option_fields()), env=env)


def test_the_flag_repeats_and_wins_over_the_variable() -> None:
    env = {"INFERWATCH_UPSTREAM": "http://a:1, http://b:2"}
    assert parse([], env).upstreams.upstream == ("http://a:1", "http://b:2")
    argv = ["--upstream", "http://c:3", "--upstream", "http://d:4"]
    assert parse(argv, env).upstreams.upstream == ("http://c:3", "http://d:4")
    assert parse([], {}).upstreams.upstream == ()


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        parse(["--upstream", "127.0.0.1:8000"], {})
