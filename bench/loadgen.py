"""A closed-loop HTTP load generator: ``clients`` threads, each posting queries back to back."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bench.timing import percentile

__all__ = ["Load", "search_load"]


@dataclass
class Load:
    """What one load test saw: per-request latencies (s), status counts, elapsed seconds."""

    clients: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses["200"]

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def figures(self) -> dict[str, object]:
        ms = [x * 1000 for x in self.latencies]
        return {"clients": self.clients, "requests": sum(self.statuses.values()),
                "errors": self.errors, "statuses": dict(self.statuses),
                "seconds": round(self.elapsed, 2), "throughput_per_s": round(self.throughput, 3),
                "p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
                "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms, default=0), 1)}


def _post(client: httpx.Client, url: str, payload: bytes, k: int) -> str:
    try:
        response = client.post(url, params={"k": k},
                               files={"image": ("query.jpg", payload, "image/jpeg")})
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return str(response.status_code)


def search_load(base_url: str, payloads: list[bytes], clients: int, seconds: float,
                k: int = 10) -> Load:
    """Every client posts ``payloads`` in turn to ``/search`` until ``seconds`` have passed."""
    load = Load(clients)
    lock = threading.Lock()
    url = base_url + "/search"
    start = time.perf_counter()
    deadline = start + seconds

    def client(n: int) -> float:
        last = time.perf_counter()
        with httpx.Client(timeout=120.0) as http:
            i = n
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                status = _post(http, url, payloads[i % len(payloads)], k)
                last = time.perf_counter()
                with lock:
                    load.statuses[status] += 1
                    if status == "200":
                        load.latencies.append(last - t0)
                i += clients
        return last

    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        ends = list(pool.map(client, range(clients)))
    load.elapsed = max(ends) - start
    return load
