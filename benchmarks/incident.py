"""The README's incident picture, made by a real run of the end-to-end scenario.

    python -m benchmarks.incident [-o docs/images/incident.png] [--keep DIR]

Runs tests/e2e/scenario.py (the service on the tiny model, the exporter, Prometheus and
Alertmanager on loopback from the generated configurations with faster clocks: steady traffic,
an overload, recovery), then `inferwatch report` over that window against the run's own
Prometheus, and writes the PNG (and the HTML page beside it). About 3 to 4 minutes; needs the
prometheus and prometheus-alertmanager binaries (`make system-deps`). `--keep DIR` keeps the
run folder (logs, Prometheus data, the generated configurations) instead of a temporary one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e import scenario

INFERWATCH = Path(sys.executable).parent / "inferwatch"
ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs/images/incident.png")
    parser.add_argument("--keep", type=Path, default=None, help="run folder to keep")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inferwatch-incident-") as temporary:
        run_dir = (args.keep or Path(temporary)).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        with scenario.running(run_dir) as loop:
            scenario.steady(loop)
            scenario.overload(loop)
            scenario.recover(loop)
            start, end = loop.marks["steady"] - 10, loop.marks["recovered"] + 5
            args.output.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [str(INFERWATCH), "report", "--prometheus", loop.prometheus,
                 "--from", f"{start:.0f}", "--to", f"{end:.0f}",
                 "--rate-window", str(scenario.FAST.rate_window),
                 "--title", "inferwatch: steady load, 10x overload, recovery "
                 "(python -m benchmarks.incident; tiny model on a 2-core CPU)",
                 "-o", str(args.output)],
                check=False,
            )  # fmt: skip
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
