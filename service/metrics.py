"""Prometheus metrics, written by hand in the text exposition format (version 0.0.4).

:class:`Metrics` counts requests by method, route template and status and keeps a latency
histogram per route; :class:`MetricsMiddleware` (pure ASGI, outermost) feeds it. Gauges (queue
depth, index size) are read when ``/metrics`` is scraped and passed to :meth:`Metrics.render`.
Routes are labelled by their template (``/images/{image_id}``), unmatched paths as ``unmatched``,
so the label set stays bounded.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "Gauge", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "cbir_"


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    value: float


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.total += seconds
        self.n += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """Thread-safe request counters and latency histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._latency: dict[str, _Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            self._latency.setdefault(route, _Histogram()).observe(seconds)

    def render(self, gauges: Iterable[Gauge] = ()) -> str:
        """The exposition text: counters, histograms, then ``gauges``."""
        lines = [f"# HELP {PREFIX}http_requests_total HTTP requests by method, route, status.",
                 f"# TYPE {PREFIX}http_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(f'{PREFIX}http_requests_total{{method="{method}",'
                             f'route="{_escape(route)}",status="{status}"}} {n}')
            lines += self._histogram_lines()
        for gauge in gauges:
            lines += [f"# HELP {PREFIX}{gauge.name} {gauge.help}",
                      f"# TYPE {PREFIX}{gauge.name} gauge",
                      f"{PREFIX}{gauge.name} {_number(gauge.value)}"]
        return "\n".join(lines) + "\n"

    def _histogram_lines(self) -> list[str]:
        name = f"{PREFIX}http_request_duration_seconds"
        lines = [f"# HELP {name} HTTP request latency by route.", f"# TYPE {name} histogram"]
        for route, h in sorted(self._latency.items()):
            label = f'route="{_escape(route)}"'
            cumulative = 0
            for bound, count in zip(BUCKETS, h.counts, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{{label},le="{bound}"}} {cumulative}')
            lines.append(f'{name}_bucket{{{label},le="+Inf"}} {h.n}')
            lines.append(f"{name}_sum{{{label}}} {h.total!r}")
            lines.append(f"{name}_count{{{label}}} {h.n}")
        return lines


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
