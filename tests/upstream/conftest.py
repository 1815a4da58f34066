"""One real vLLM for the whole session (it takes minutes to start), on the tiny model's
Hugging Face folder written by the project (no weights are downloaded), exporting its spans to
a loopback OTLP sink; and inferwatch in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.engine.hf_export import write_hf_folder
from tests.support.otlp_sink import OtlpSink
from tests.upstream.processes import VLLM_PYTHON, Server, start_inferwatch, start_vllm


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hf_folder("tiny", tmp_path_factory.mktemp("tiny-hf"), seed=0)


@pytest.fixture(scope="session")
def otlp_sink() -> Iterator[OtlpSink]:
    with OtlpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def vllm(
    model_dir: Path, otlp_sink: OtlpSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    if not VLLM_PYTHON.exists():
        pytest.skip("no .venv-vllm: run `make vllm` (make test builds it)")
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    server = start_vllm(model_dir, log, otlp_sink.base_url + "/v1/traces")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def front(
    vllm: Server, model_dir: Path, otlp_sink: OtlpSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`inferwatch serve --upstream` with the tokenizer of the folder vLLM serves, its spans to
    the same sink, admission as it comes (adaptive)."""
    log = tmp_path_factory.mktemp("front") / "inferwatch.log"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.base_url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    server = start_inferwatch(
        "--upstream", vllm.base_url, "--model-path", str(model_dir), log=log, env=env
    )
    yield server
    server.stop()
