"""Live queue, batch and KV-cache state, read from the backend at scrape time.

Gauges that the request path updated would go stale the moment the engine thread moves on;
reading `backend.stats()` in `collect()` gives the value as of the scrape, for free when nobody
scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from inference.backend import Backend, KVCacheStats, Priority


class QueueSource:
    """A MetricSource (exporters.collector) over one backend's `stats()`; the KV-cache families
    appear only for a backend that has a KV cache (`stats().kv`), never as invented zeros."""

    name = "queue"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def collect(self) -> Iterable[Metric]:
        stats = self.backend.stats()
        model = self.backend.model_name
        depth = GaugeMetricFamily(
            "inferwatch_queue_depth", "Requests waiting now.", labels=["model", "priority"]
        )
        oldest = GaugeMetricFamily(
            "inferwatch_queue_oldest_wait_seconds",
            "Age of the oldest waiting request.",
            labels=["model", "priority"],
        )
        for priority in Priority:
            depth.add_metric([model, priority.value], stats.waiting_by_priority.get(priority, 0))
            oldest.add_metric(
                [model, priority.value], stats.oldest_wait_seconds_by_priority.get(priority, 0.0)
            )
        running = GaugeMetricFamily(
            "inferwatch_requests_running", "Sequences in the running batch.", labels=["model"]
        )
        running.add_metric([model], stats.running)
        families: list[Metric] = [depth, oldest, running]
        if stats.kv is not None:
            families += _kv_families(model, stats.kv)
        return families

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        # No stale or invented values: the group's error counter tells the story.
        return []


def _kv_families(model: str, kv: KVCacheStats) -> list[Metric]:
    preemptions = CounterMetricFamily(
        "inferwatch_preemptions_total",
        "Sequences preempted for KV space.",
        labels=["model", "priority"],
    )
    for priority in Priority:
        preemptions.add_metric([model, priority.value], kv.preemptions_by_priority.get(priority, 0))
    usage = GaugeMetricFamily(
        "inferwatch_kv_cache_usage_ratio", "Used KV blocks / total.", labels=["model"]
    )
    usage.add_metric([model], kv.usage_ratio)
    blocks = GaugeMetricFamily(
        "inferwatch_kv_cache_blocks", "KV blocks by state.", labels=["model", "state"]
    )
    blocks.add_metric([model, "used"], kv.blocks_used)
    blocks.add_metric([model, "free"], kv.blocks_free)
    blocks.add_metric([model, "cached"], kv.blocks_cached)
    queries = CounterMetricFamily(
        "inferwatch_prefix_cache_queries_total",
        "Prompt tokens looked up in the prefix cache.",
        labels=["model"],
    )
    queries.add_metric([model], kv.prefix_cache_queries_tokens)
    hits = CounterMetricFamily(
        "inferwatch_prefix_cache_hits_total",
        "Prompt tokens found in the prefix cache.",
        labels=["model"],
    )
    hits.add_metric([model], kv.prefix_cache_hits_tokens)
    info = GaugeMetricFamily(
        "inferwatch_kv_cache_info",
        "KV cache configuration (value 1).",
        labels=["model", "block_size", "num_blocks", "dtype", "device"],
    )
    info.add_metric(
        [model, str(kv.block_size), str(kv.blocks_total), kv.dtype, kv.device],
        1,
    )
    return [usage, blocks, queries, hits, preemptions, info]
