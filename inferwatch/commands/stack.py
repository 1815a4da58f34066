"""`inferwatch stack up`: the service, exporter, Prometheus and Alertmanager on loopback from the
generated configurations (what `make run` starts); Ctrl-C or SIGTERM stops everything. See
deploy/stack.py."""

from __future__ import annotations

import argparse
import shlex
import signal
from pathlib import Path
from types import FrameType

from deploy import topology as t


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("action", choices=["up"], help="up: start the stack and stay in the foreground")
    add("--run-dir", type=Path, default=Path(".run"), help="data and logs (default .run)")
    add("--load", action="store_true", help="drive a demo workload with periodic overload")
    add("--load-rate", type=float, default=4.0, help="demo requests per second between bursts")
    add("--port", type=int, default=t.SERVICE_PORT, help="the service's port")
    add("--prometheus-port", type=int, default=t.PROMETHEUS_PORT)
    add("--alertmanager-port", type=int, default=t.ALERTMANAGER_PORT)
    add("--exporter-port", type=int, default=t.EXPORTER_PORT)
    add("--scrape-interval", type=float, default=5.0, help="seconds (local default 5)")
    add("--serve-args", default="", help='flags for `inferwatch serve`, e.g. "--model tiny"')


def run(args: argparse.Namespace) -> int:
    from deploy.stack import Stack, StackConfig

    extra = shlex.split(args.serve_args)
    stack = Stack(
        StackConfig(
            run_dir=args.run_dir, service_port=args.port, exporter_port=args.exporter_port,
            prometheus_port=args.prometheus_port, alertmanager_port=args.alertmanager_port,
            scrape_interval=args.scrape_interval, evaluation_interval=args.scrape_interval,
            load=args.load, load_rate=args.load_rate, serve_args=extra,
        )
    )  # fmt: skip
    stack.prepare()
    # SIGTERM (a supervisor's `kill`) takes Ctrl-C's path; Python's default would end this
    # process at once and leave Prometheus, Alertmanager and the service running.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start()
        return stack.wait()
    except RuntimeError as exc:
        print(f"inferwatch stack: {exc}")
        return 1
    finally:
        stack.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
