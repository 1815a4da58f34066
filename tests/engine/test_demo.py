"""`inferwatch engine` runs the sample workload end to end in a fresh process."""

from __future__ import annotations

import subprocess
import sys


def test_engine_subcommand_prints_stats() -> None:
    cmd = [sys.executable, "-m", "inferwatch.cli", "engine", "--requests", "6", "--max-tokens", "5"]
    cmd += ["--model", "tiny", "--num-kv-blocks", "64"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line.startswith("demo-")]
    assert len(rows) == 6
    assert {row.split()[1] for row in rows} == {"premium", "standard", "batch"}
    assert all(row.split()[3] == "5" for row in rows)  # output tokens per request
    assert "requests=6 generated_tokens=30" in proc.stdout
    assert any(line.startswith("preemptions: premium=") for line in lines)
    prefix = next(line for line in lines if line.startswith("prefix_cache:"))
    assert int(prefix.split("hit_tokens=")[1].split()[0]) > 0  # the shared system prompt
