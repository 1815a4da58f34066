"""deploy/topology.py writes the service's numbers down rather than importing them (importing
the settings loads torch); these tests hold them equal to the service's own."""

from __future__ import annotations

import argparse
import re

from deploy import topology as t
from inference.api.drain import CUT_TIMEOUT_SECONDS
from inference.settings import Settings
from inferwatch.commands import exporter
from inferwatch.commands.serve import server_config
from tests.deploy.manifests import REPO


def test_service_numbers_match_the_settings_defaults() -> None:
    settings = Settings()
    assert settings.port == t.SERVICE_PORT
    assert t.SHUTDOWN.drain_seconds == settings.shutdown_grace_seconds
    assert t.SHUTDOWN.span_flush_seconds == settings.span_flush_seconds


def test_shutdown_steps_match_the_service_code() -> None:
    assert t.SHUTDOWN.cut_seconds == CUT_TIMEOUT_SECONDS
    config = server_config(app=None, settings=Settings())
    assert t.SHUTDOWN.close_seconds == config.timeout_graceful_shutdown


def test_exporter_port_is_the_exporter_default() -> None:
    parser = argparse.ArgumentParser()
    exporter.add_arguments(parser)
    assert parser.parse_args([]).port == t.EXPORTER_PORT


def test_dockerfile_installs_the_makefile_torch() -> None:
    makefile = re.search(r"^TORCH \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)
    dockerfile = re.search(r'^ARG TORCH_SPEC="(\S+)"$', (REPO / "Dockerfile").read_text(), re.M)
    assert makefile and dockerfile
    assert dockerfile.group(1) == makefile.group(1) == "torch==2.13.0"
