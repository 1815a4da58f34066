"""Real servers on loopback for the upstream tests: vLLM from the repo's `.venv-vllm` (built by
`make vllm`) and `inferwatch serve`, each logging to a file (a pipe nobody reads would fill and
stall the server under load), each ready before use, waited on with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.serve_process import REPO, free_port
from tests.support.waiting import wait_until

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
INFERWATCH = Path(sys.executable).parent / "inferwatch"
SERVED_NAME = "inferwatch-tiny"
# Measured: about 100 s on an idle 2-core machine, four minutes when it is shared.
VLLM_READY_SECONDS = 480.0


class Server:
    """A subprocess answering HTTP on 127.0.0.1:port."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def answers(self, path: str) -> bool:
        try:
            return httpx.get(self.base_url + path, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, path: str, seconds: float) -> None:
        up = wait_until(lambda: self.proc.poll() is not None or self.answers(path), seconds, 0.5)
        if not up or self.proc.poll() is not None:
            self.stop()
            tail = self.log.read_text()[-4000:]
            raise RuntimeError(f"{self.proc.args[:3]} did not become ready:\n{tail}")

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log_file.close()


def start_vllm(model_dir: Path, log: Path, otlp_traces: str | None = None) -> Server:
    """vLLM's OpenAI server on the CPU, greedy-exact float32, eager (no compilation: it
    starts sooner), 1 GiB of KV cache; spans to `otlp_traces` over OTLP/HTTP when given."""
    port = free_port()
    argv = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
        "--max-num-seqs", "32",  # no --disable-log-stats: vLLM 0.32 tracing asserts stats
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    if otlp_traces is not None:
        argv += ["--otlp-traces-endpoint", otlp_traces]
        env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
        env["OTEL_BSP_SCHEDULE_DELAY"] = "200"
    server = Server(argv, env, log, port)
    server.wait_ready("/v1/models", VLLM_READY_SECONDS)
    return server


def start_inferwatch(
    *args: str, log: Path, env: dict[str, str] | None = None, ready: str = "/ready"
) -> Server:
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    if "OTEL_EXPORTER_OTLP_ENDPOINT" not in (env or {}):
        full_env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    argv = [str(INFERWATCH), "serve", "--port", str(port), *args]
    server = Server(argv, full_env, log, port)
    server.wait_ready(ready, 120.0)
    return server


@contextmanager
def front_of(vllm: Server, model_dir: Path, log_dir: Path, *flags: str) -> Iterator[Server]:
    """`inferwatch serve --upstream` in front of `vllm` with `flags`, stopped afterwards."""
    server = start_inferwatch(
        "--upstream", vllm.base_url, "--model-path", str(model_dir), *flags,
        log=log_dir / "inferwatch.log",
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()
