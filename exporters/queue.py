"""Live queue, batch and KV-cache state, read from the backend at scrape time.

Gauges that the request path updated would go stale the moment the engine thread moves on;
reading `backend.stats()` in `collect()` gives the value as of the scrape, for free when nobody
scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from inference.backend import Backend, Priority


class QueueSource:
    """A MetricSource (exporters.collector) over one backend's `stats()`."""

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
        preemptions = CounterMetricFamily(
            "inferwatch_preemptions_total",
            "Sequences preempted for KV space.",
            labels=["model", "priority"],
        )
        for priority in Priority:
            depth.add_metric([model, priority.value], stats.waiting_by_priority.get(priority, 0))
            oldest.add_metric(
                [model, priority.value], stats.oldest_wait_seconds_by_priority.get(priority, 0.0)
            )
            preemptions.add_metric(
                [model, priority.value], stats.preemptions_by_priority.get(priority, 0)
            )
        running = GaugeMetricFamily(
            "inferwatch_requests_running", "Sequences in the running batch.", labels=["model"]
        )
        running.add_metric([model], stats.running)
        usage = GaugeMetricFamily(
            "inferwatch_kv_cache_usage_ratio", "Used KV blocks / total.", labels=["model"]
        )
        usage.add_metric([model], stats.kv_usage_ratio)
        blocks = GaugeMetricFamily(
            "inferwatch_kv_cache_blocks", "KV blocks by state.", labels=["model", "state"]
        )
        blocks.add_metric([model, "used"], stats.kv_blocks_used)
        blocks.add_metric([model, "free"], stats.kv_blocks_free)
        blocks.add_metric([model, "cached"], stats.kv_blocks_cached)
        queries = CounterMetricFamily(
            "inferwatch_prefix_cache_queries_total",
            "Prompt tokens looked up in the prefix cache.",
            labels=["model"],
        )
        queries.add_metric([model], stats.prefix_cache_queries_tokens)
        hits = CounterMetricFamily(
            "inferwatch_prefix_cache_hits_total",
            "Prompt tokens found in the prefix cache.",
            labels=["model"],
        )
        hits.add_metric([model], stats.prefix_cache_hits_tokens)
        info = GaugeMetricFamily(
            "inferwatch_kv_cache_info",
            "KV cache configuration (value 1).",
            labels=["model", "block_size", "num_blocks", "dtype", "device"],
        )
        info.add_metric(
            [model, str(stats.block_size), str(stats.kv_blocks_total), stats.dtype, stats.device],
            1,
        )
        return [depth, oldest, running, usage, blocks, queries, hits, preemptions, info]

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        # No stale or invented values: the group's error counter tells the story.
        return []
