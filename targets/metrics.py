"""Prometheus metrics for the reference stack: every program serves ``GET /metrics``.

Each program owns one :class:`prometheus_client.CollectorRegistry` (not the process-wide default,
so tests can build several servers in one process). The hot path only increments counters and
observes histograms (a lock and an add each); gauges that describe state (breaker state, pool
size, instances) are read at scrape time by :class:`StateCollector`, so they cost nothing between
scrapes. The names are listed in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Latency buckets (seconds) that resolve the reference stack's 5-40 ms service times and the
# 1 s upstream timeout, and a slow fallback: about 15 series per tier.
# The *_created series double every counter's lines and say nothing a drill needs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

GaugeRows = Iterable[tuple[dict[str, str], float]]
"""(labels, value) rows of one gauge family, computed at scrape time."""


class StateCollector(Collector):
    """Gauges computed when Prometheus scrapes: ``families`` maps a metric name to its help
    text, its label names and a function returning the rows."""

    def __init__(self, families: list[tuple[str, str, list[str], Callable[[], GaugeRows]]]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        for name, documentation, label_names, rows in self.families:
            family = GaugeMetricFamily(name, documentation, labels=label_names)
            for labels, value in rows():
                family.add_metric([labels[key] for key in label_names], value)
            yield family


def add_metrics_route(app: web.Application, registry: CollectorRegistry) -> None:
    """Serve ``registry`` at ``GET /metrics`` in the Prometheus text format."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
