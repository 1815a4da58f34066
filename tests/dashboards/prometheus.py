"""A real Prometheus (the Debian package's binary) on loopback for one test module: scraping
given targets every second, evaluating given rule files every second, storing exemplars."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.serve_process import free_port
from tests.support.waiting import wait_until


class PrometheusError(AssertionError):
    """Prometheus answered a query with an error (a query that does not parse, ...)."""


class Prometheus:
    def __init__(
        self, workdir: Path, rule_files: Sequence[Path], jobs: Mapping[str, Sequence[str]]
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in jobs.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        args = [
            "prometheus", f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--enable-feature=exemplar-storage",  # as deploy/ runs it: exemplars need the flag
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        if not wait_until(self._ready, timeout=60, interval=0.2):
            self.stop()
            raise RuntimeError(f"Prometheus did not start: {self.log.read_text()[-2000:]}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            return True  # exited: reported by the caller's check below
        try:
            return self.client.get("/-/ready").is_success
        except httpx.TransportError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        """`data` of a /api/v1 answer; PrometheusError with Prometheus' message otherwise."""
        answer = self.client.post(f"/api/v1/{path}", data=params)
        body = answer.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def instant(self, query: str) -> list[dict[str, Any]]:
        return self.api("query", query=query)["result"]

    def since(self, query: str, start: float, step: float = 1.0) -> list[dict[str, Any]]:
        """A panel's range query from about `start` to now, with a step point at now itself: a
        series first recorded within the last step (a baseline that an instant query just
        found) has no sample at steps aligned on `start`, and read as no series at all."""
        end = time.time()
        steps = max(1, math.ceil((end - start) / step))
        data = self.api("query_range", query=query, start=end - steps * step, end=end, step=step)
        return data["result"]

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
