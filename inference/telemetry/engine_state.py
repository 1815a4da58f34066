"""Live queue, batch and KV-cache state, read from the backend at scrape time.

Gauges that the request path updated would go stale the moment the engine thread moves on;
reading `backend.stats()` in `collect()` gives the value as of the scrape, for free when nobody
scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from inference.backend import Backend, KVCacheStats, Priority, UpstreamStats
from inference.telemetry import catalog


class QueueSource:
    """A MetricSource (exporters.collector) over one backend's `stats()`; the KV-cache families
    appear only for a backend that has a KV cache (`stats().kv`), never as invented zeros."""

    name = "queue"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def collect(self) -> Iterable[Metric]:
        stats = self.backend.stats()
        model = self.backend.model_name
        depth = catalog.QUEUE_DEPTH.family()
        oldest = catalog.QUEUE_OLDEST_WAIT.family()
        for priority in Priority:
            depth.add_metric([model, priority.value], stats.waiting_by_priority.get(priority, 0))
            oldest.add_metric(
                [model, priority.value], stats.oldest_wait_seconds_by_priority.get(priority, 0.0)
            )
        running = catalog.REQUESTS_RUNNING.family()
        running.add_metric([model], stats.running)
        waiting = catalog.REQUESTS_WAITING.family()
        waiting.add_metric([model], sum(stats.waiting_by_priority.values()))
        families: list[Metric] = [depth, oldest, running, waiting]
        if stats.kv is not None:
            families += _kv_families(model, stats.kv)
        if stats.upstreams is not None:
            families += _upstream_families(model, stats.upstreams)
        return families

    def on_error(self, exc: BaseException) -> Iterable[Metric]:
        # No stale or invented values: the group's error counter tells the story.
        return []


def _kv_families(model: str, kv: KVCacheStats) -> list[Metric]:
    preemptions = catalog.PREEMPTIONS.family()
    for priority in Priority:
        preemptions.add_metric([model, priority.value], kv.preemptions_by_priority.get(priority, 0))
    usage = catalog.KV_CACHE_USAGE.family()
    usage.add_metric([model], kv.usage_ratio)
    blocks = catalog.KV_CACHE_BLOCKS.family()
    blocks.add_metric([model, "used"], kv.blocks_used)
    blocks.add_metric([model, "free"], kv.blocks_free)
    blocks.add_metric([model, "cached"], kv.blocks_cached)
    queries = catalog.PREFIX_CACHE_QUERIES.family()
    queries.add_metric([model], kv.prefix_cache_queries_tokens)
    hits = catalog.PREFIX_CACHE_HITS.family()
    hits.add_metric([model], kv.prefix_cache_hits_tokens)
    info = catalog.KV_CACHE_INFO.family()
    info.add_metric(
        [model, str(kv.block_size), str(kv.blocks_total), kv.dtype, kv.device],
        1,
    )
    return [usage, blocks, queries, hits, preemptions, info]


def _upstream_families(model: str, upstreams: Iterable[UpstreamStats]) -> list[Metric]:
    """A replica without a good /metrics reading has no waiting or running sample rather than
    a stale or zero one; its `up` and outstanding figures are always known."""
    up = catalog.UPSTREAM_UP.family()
    waiting = catalog.UPSTREAM_WAITING.family()
    running = catalog.UPSTREAM_RUNNING.family()
    outstanding = catalog.UPSTREAM_OUTSTANDING.family()
    for u in upstreams:
        labels = [model, u.url]
        up.add_metric(labels, 1 if u.healthy else 0)
        outstanding.add_metric(labels, u.outstanding)
        if u.waiting is not None:
            waiting.add_metric(labels, u.waiting)
        if u.running is not None:
            running.add_metric(labels, u.running)
    return [up, waiting, running, outstanding]
