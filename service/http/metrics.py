"""Prometheus metrics through the official client, ``prometheus_client``.

:class:`Metrics` holds one registry per app (no global state, so several apps can live in one
process): requests by method, route template and status (``cbir_http_requests_total``), a latency
histogram per route (``cbir_http_request_duration_seconds``), the process's own metrics (CPU,
memory, open files) and gauges read when ``/metrics`` is scraped (queue depth, index size...).
:class:`MetricsMiddleware` (pure ASGI, outermost) feeds it. Routes are labelled by their template
(``/images/{image_id}``), unmatched paths as ``unmatched``, so the label set stays bounded.

Multiprocess-ready: when ``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus_client's own variable),
counters and histograms are written there by every worker process and a scrape aggregates them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "Gauge", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "cbir_"


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    value: float


class _Gauges(Collector):
    """Gauges computed at scrape time by ``read``."""

    def __init__(self, read: Callable[[], Iterable[Gauge]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        for gauge in self.read():
            yield GaugeMetricFamily(f"{PREFIX}{gauge.name}", gauge.help, value=gauge.value)


class Metrics:
    """Request counters, latency histograms, process metrics and scrape-time gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(f"{PREFIX}http_requests_total",
                                 "HTTP requests by method, route, status.",
                                 ("method", "route", "status"), registry=self.registry)
        self._latency = Histogram(f"{PREFIX}http_request_duration_seconds",
                                  "HTTP request latency by route.", ("route",), buckets=BUCKETS,
                                  registry=self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._gauges: _Gauges | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(route).observe(seconds)

    def gauges(self, read: Callable[[], Iterable[Gauge]]) -> None:
        """Report what ``read`` returns at every scrape."""
        self._gauges = _Gauges(read)
        self.registry.register(self._gauges)

    def render(self) -> bytes:
        """The exposition text of everything registered (aggregated across processes)."""
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        if self._gauges is not None:
            merged.register(self._gauges)
        return generate_latest(merged)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class MetricsMiddleware:
    """Times every HTTP request and records its status (500 when the app raised)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe(scope["method"], _route_of(scope), status,
                                 time.perf_counter() - start)
