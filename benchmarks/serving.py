"""`inferwatch serve` as a subprocess on a free loopback port, for benchmarks: what they measure
is the real command, with nothing of the test suite in between."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
INFERWATCH = Path(sys.executable).parent / "inferwatch"


@dataclass(frozen=True)
class Served:
    base_url: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(args: list[str], env_extra: dict[str, str] | None = None) -> Iterator[Served]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INFERWATCH_"))}
    env.update(env_extra or {})
    env.setdefault("INFERWATCH_LOG_LEVEL", "warning")
    proc = subprocess.Popen(
        [str(INFERWATCH), "serve", "--port", str(port), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"inferwatch serve exited with {proc.returncode}")
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("inferwatch serve did not become ready")
            time.sleep(0.2)
        yield Served(base, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
