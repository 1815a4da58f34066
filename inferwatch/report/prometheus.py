"""Range queries against Prometheus' HTTP API (`/api/v1/query_range`)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    times: list[float]  # unix seconds
    values: list[float]


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        try:
            response = httpx.get(
                self.url + "/api/v1/query_range",
                params={"query": query, "start": start, "end": end, "step": step},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from exc
        body = response.json() if response.headers.get("content-type", "").startswith(
            "application/json"
        ) else {}  # fmt: skip
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"{query!r}: {body.get('error', response.text[:200])}")
        return [
            Series(
                labels=item["metric"],
                times=[float(t) for t, _ in item["values"]],
                values=[float(v) for _, v in item["values"]],
            )
            for item in body["data"]["result"]
        ]
