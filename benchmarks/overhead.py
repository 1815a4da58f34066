"""What full telemetry costs: the same load against the service with telemetry on and off.

On: metrics with exemplars, tracing sampled at 100% and exported over OTLP/HTTP to a local sink
run here. Off: `INFERWATCH_TELEMETRY=0` (no metric observation, no tracing, no instrumentation).
Both services run as real `inferwatch serve` subprocesses on loopback. Each round runs the same
closed-loop load (a fixed number of requests, `--concurrency` in flight) against both, back to
back in alternating order, so drift on a shared machine hits both halves of a pair alike; the
overhead is one minus the median of the per-round throughput ratios on/off. The last line printed
is `telemetry_overhead=<fraction of throughput lost>` (negative: noise in telemetry's favour).

    python -m benchmarks.overhead [--rounds 15] [--requests 144] [--concurrency 48]
                                  [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from benchmarks.serving import serve


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and throws them away (an empty body is a valid reply)."""

    exports = 0
    bytes_received = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).exports += 1
        type(self).bytes_received += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def service(env_extra: dict[str, str], device: str) -> Iterator[str]:
    # The random tiny model: on a fast model the telemetry's share is largest (the worst case).
    # Admission off in both: its adaptive limits would refuse part of this closed loop, and
    # what is measured here is the telemetry alone.
    args = ["--model", "tiny", "--device", device, "--admission-mode", "off"]
    with serve(args, env_extra) as served:
        yield served.base_url


async def _one(client: httpx.AsyncClient, i: int, max_tokens: int) -> int:
    body = {
        "prompt": f"request number {i}: tell me",
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    if i % 2:
        response = await client.post("/v1/completions", json=body)
        response.raise_for_status()
        return int(response.json()["usage"]["completion_tokens"])
    tokens = 0
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/completions", json=streamed) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line.removeprefix("data: ")).get("usage")
                tokens = usage["completion_tokens"] if usage else tokens
    return int(tokens)


def server_cpu_seconds(base: str) -> float:
    """The server process's CPU time (its process collector), steadier than wall time when
    other work shares the machine."""
    text = httpx.get(base + "/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    raise RuntimeError("no process_cpu_seconds_total in /metrics")


async def load_round(base: str, requests: int, concurrency: int, max_tokens: int) -> float:
    """Generated tokens per second for `requests` requests (half streamed), `concurrency` at a
    time: a steady closed loop, so the round measures throughput rather than a ramp and a tail."""
    limits = httpx.Limits(max_connections=concurrency)
    slots = asyncio.Semaphore(concurrency)

    async def limited(client: httpx.AsyncClient, i: int) -> int:
        async with slots:
            return await _one(client, i, max_tokens)

    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        start = time.perf_counter()
        counts = await asyncio.gather(*(limited(client, i) for i in range(requests)))
        elapsed = time.perf_counter() - start
    if sum(counts) != requests * max_tokens:
        raise RuntimeError(f"expected {requests * max_tokens} tokens, got {sum(counts)}")
    return sum(counts) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per variant")
    parser.add_argument("--requests", type=int, default=144, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=48, help="requests in flight")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    with otlp_sink() as sink:
        on_env = {
            "INFERWATCH_TELEMETRY": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
            "OTEL_TRACES_SAMPLER": "always_on",
        }
        with (
            service(on_env, args.device) as on_url,
            service({"INFERWATCH_TELEMETRY": "0"}, args.device) as off_url,
        ):
            variants = {"on": on_url, "off": off_url}
            for url in variants.values():  # warm-up: first-touch allocations, JIT-free but cold
                asyncio.run(load_round(url, args.concurrency, args.concurrency, args.max_tokens))
            results: dict[str, list[float]] = {"on": [], "off": []}
            cpu: dict[str, list[float]] = {"on": [], "off": []}
            for round_ in range(args.rounds):
                order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
                for name in order:
                    url = variants[name]
                    cpu_before = server_cpu_seconds(url)
                    tps = asyncio.run(
                        load_round(url, args.requests, args.concurrency, args.max_tokens)
                    )
                    results[name].append(tps)
                    cpu[name].append(server_cpu_seconds(url) - cpu_before)
            with httpx.Client(base_url=on_url) as c:
                scrape = c.get("/metrics", headers={"Accept": "application/openmetrics-text"})
            exemplars = scrape.text.count("# {trace_id=")
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    ratios = [a / b for a, b in zip(results["on"], results["off"], strict=True)]
    print(
        f"load: {args.requests} requests per round, {args.concurrency} in flight (half streamed), "
        f"{args.max_tokens} tokens each, greedy, {args.rounds} paired rounds"
    )
    print(f"telemetry on:  {on:8.1f} tokens/s  rounds {[round(x, 1) for x in results['on']]}")
    print(f"telemetry off: {off:8.1f} tokens/s  rounds {[round(x, 1) for x in results['off']]}")
    print(f"OTLP exports received: {_Sink.exports} ({_Sink.bytes_received} bytes); "
          f"exemplars in one scrape: {exemplars}")  # fmt: skip
    tokens_per_round = args.requests * args.max_tokens / 1000
    cpu_on = statistics.median(cpu["on"]) / tokens_per_round
    cpu_off = statistics.median(cpu["off"]) / tokens_per_round
    print(f"server CPU per 1k tokens (median): on {cpu_on:.3f} s, off {cpu_off:.3f} s "
          f"(ratio {cpu_on / cpu_off:.3f})")  # fmt: skip
    print(f"ratio of medians: {on / off:.4f}; per-round ratios on/off: "
          f"{[round(r, 3) for r in ratios]}")  # fmt: skip
    print(f"telemetry_overhead={1.0 - statistics.median(ratios):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
