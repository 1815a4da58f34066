"""`inferwatch serve` as a real subprocess on a free loopback port, ready before use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
INFERWATCH = Path(sys.executable).parent / "inferwatch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    def __init__(
        self, *args: str, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # The random tiny model: fast to load; a test that needs another passes it in `env`.
        small = {"INFERWATCH_MODEL": "tiny", "INFERWATCH_NUM_KV_BLOCKS": "256"}
        full_env = {**os.environ, **small, **(env or {})}
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in (env or {}):
            full_env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        self.proc = subprocess.Popen(
            [str(INFERWATCH), "serve", "--port", str(self.port), *args],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> bool:
        try:
            return httpx.get(self.base_url + "/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def __enter__(self) -> ServeProcess:
        # Generous: a start on a loaded 2-core machine (imports, model) can take minutes.
        up = wait_until(lambda: self.proc.poll() is not None or self.ready(), timeout=240)
        if not up or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"inferwatch serve did not become ready: {self.output()}")
        return self

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        out, err = self.proc.communicate(timeout=5)
        return f"stdout={out!r} stderr={err[-3000:]!r}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.stop()
