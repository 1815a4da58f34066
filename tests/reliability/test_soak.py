"""The soak benchmark, short (the full length is `make reliability`): at 2x the measured
capacity, every request the client sent either completed or got a visible error."""

from __future__ import annotations

import re
import subprocess
import sys

from benchmarks.serving import REPO


def test_short_soak_loses_nothing() -> None:
    cmd = [sys.executable, "-m", "benchmarks.soak", "--minutes", "0.25", "--capacity-seconds", "6"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.rstrip().splitlines()[-1] == "lost=0", out
    accepted = int(re.search(r"accepted=(\d+)", out).group(1))  # type: ignore[union-attr]
    completed = int(re.search(r"completed=(\d+)", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"failed=(\d+)", out).group(1))  # type: ignore[union-attr]
    assert accepted == completed + failed and completed > 0, out
    assert failed == 0, out  # overload refuses; it never fails what it accepted
    # 2x capacity really overloaded the service: the engine's queue or admission refused.
    assert "queue_full" in out or "concurrency_limit" in out, out
