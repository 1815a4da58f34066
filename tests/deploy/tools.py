"""The real command-line checkers, found on PATH: a missing one fails the test with the way to
install it (deploy/install-system-deps.sh, run by `make test`), never a skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL = "run `bash deploy/install-system-deps.sh` (make test does)"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {INSTALL}")
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120
    )
