"""`inferwatch exporter`: the standalone GPU/host exporter for GPU nodes (e.g. beside vLLM).

It starts and serves `inferwatch_gpu_up 0` on a host without a GPU or driver, so one DaemonSet
spec fits every node and a broken driver shows up as a metric, not as a crash loop.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType

from prometheus_client import CollectorRegistry, ProcessCollector

from exporters.collector import CollectorGroup, MetricSource
from exporters.server import make_server

log = logging.getLogger(__name__)


def _gpu(args: argparse.Namespace) -> MetricSource:
    from exporters.gpu import GpuSource

    return GpuSource(
        cache_seconds=args.cache_seconds,
        watch_xid=not args.no_xid,
        timeout_seconds=args.nvml_timeout_seconds,
    )


def _host(args: argparse.Namespace) -> MetricSource:
    from exporters.host import HostSource

    return HostSource()


COLLECTORS: dict[str, Callable[[argparse.Namespace], MetricSource]] = {
    "gpu": _gpu,
    "host": _host,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9835, help="0 picks a free port (printed)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--collectors",
        default="gpu,host",
        help=f"comma-separated, from: {', '.join(COLLECTORS)} (default: gpu,host)",
    )
    parser.add_argument(
        "--cache-seconds",
        type=float,
        default=1.0,
        help="reuse one NVML pass for scrapes within this many seconds (default 1.0)",
    )
    parser.add_argument(
        "--nvml-timeout-seconds",
        type=float,
        default=5.0,
        help="longest a scrape waits for NVML before reporting inferwatch_gpu_up 0 (default 5)",
    )
    parser.add_argument("--no-xid", action="store_true", help="do not watch NVML XID events")
    parser.add_argument("--log-level", default="INFO", help="Python logging level")


def parse_collectors(spec: str) -> list[str]:
    """Names in order, without duplicates; ValueError names what is wrong."""
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
        raise ValueError("--collectors is empty")
    unknown = [n for n in names if n not in COLLECTORS]
    if unknown:
        raise ValueError(
            f"unknown collector(s): {', '.join(unknown)}; known: {', '.join(COLLECTORS)}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        names = parse_collectors(args.collectors)
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be 0..65535, got {args.port}")
        if args.cache_seconds < 0:
            raise ValueError(f"--cache-seconds must be >= 0, got {args.cache_seconds}")
        if args.nvml_timeout_seconds <= 0:
            raise ValueError(f"--nvml-timeout-seconds must be > 0, got {args.nvml_timeout_seconds}")
    except ValueError as exc:
        print(f"inferwatch exporter: {exc}", file=sys.stderr)
        return 2

    sources = [COLLECTORS[name](args) for name in names]
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(CollectorGroup(sources))
    try:
        server = make_server(registry, args.host, args.port)
    except OSError as exc:
        print(
            f"inferwatch exporter: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        _close(sources)
        return 1

    signal.signal(signal.SIGTERM, _raise_interrupt)
    host, port = server.server_address[:2]
    print(f"inferwatch exporter listening on http://{host}:{port}/metrics", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
        _close(sources)
    return 0


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _close(sources: list[MetricSource]) -> None:
    for source in sources:
        close = getattr(source, "close", None)
        if close is not None:
            close()
