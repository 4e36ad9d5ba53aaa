"""Part 3: query latency — ``POST /search`` over HTTP against the bare cost of a query.

A small index (paris250 photographs, VGG16 with seeded random weights, longer side 224, like
part 1) is served by the real service (``python -m service``, uvicorn, default settings) in a
subprocess. A closed-loop load generator on loopback posts the original JPEG files, with 1 and
then 8 concurrent clients, each for a bounded time. The bare cost is measured in this process on
the same images: one forward pass at the query size plus one FAISS search (decoding, pooling and
HTTP are what the service adds). Bare runs bracket each load test, so drifting load cancels out.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.loadgen import Load, search_load
from bench.plan import Plan
from bench.report import PartResult, Target
from bench.server import Service
from bench.shared import Missing, paris250, spread
from retrieval import create_collection, ingest, load_image
from retrieval.features import Embedder, EmbedderConfig
from retrieval.index import ImageIndex

__all__ = ["Bare", "run"]

P50_TARGET = 1.2
THROUGHPUT_TARGET = 0.9
QUERIES = 8
K = 10


@dataclass(frozen=True)
class Bare:
    """Median seconds of one forward pass, and of one forward pass plus one search."""

    forward: float
    cost: float

    @property
    def throughput(self) -> float:
        return 1.0 / self.forward


def bare_cost(embedder: Embedder, index: ImageIndex, images: list[Image.Image],
              rounds: int = 3) -> Bare:
    """Time forward (batch of one) and search for each query image, after one warm-up each."""
    backbone, side = embedder.backbone, embedder.config.image_side
    tensors = [backbone.preprocess(image, side)[None] for image in images]
    xqs = [embedder.embed_images([image]) for image in images]  # warms every shape up
    forwards: list[float] = []
    costs: list[float] = []
    for _ in range(rounds):
        for tensor, xq in zip(tensors, xqs, strict=True):
            t0 = time.perf_counter()
            backbone.forward(tensor)
            t1 = time.perf_counter()
            index.search(xq, K)
            t2 = time.perf_counter()
            forwards.append(t1 - t0)
            costs.append(t2 - t0)
    return Bare(statistics.median(forwards), statistics.median(costs))


def build_index(embedder: Embedder, paths: list[Path], directory: Path) -> Path:
    collection = create_collection(directory, embedder, factory="Flat")
    try:
        ingest(collection, [(str(p), p) for p in paths])
    finally:
        collection.close()
    return directory


def _figures(bare: list[Bare], loads: list[Load]) -> dict[str, object]:
    return {
        "bare_forward_ms": [round(b.forward * 1000, 1) for b in bare],
        "bare_cost_ms": [round(b.cost * 1000, 1) for b in bare],
        "bare_forward_throughput_per_s": [round(b.throughput, 3) for b in bare],
        "loads": [load.figures() for load in loads],
    }


def _targets(bare: list[Bare], one: Load, eight: Load) -> list[Target]:
    cost = (bare[0].cost + bare[1].cost) / 2
    throughput = (bare[1].throughput + bare[2].throughput) / 2
    p50 = statistics.median(one.latencies) if one.latencies else float("inf")
    return [
        Target("1 client: p50 / bare (forward + search)", p50 / cost, P50_TARGET, False),
        Target("8 clients: throughput / bare forward throughput", eight.throughput / throughput,
               THROUGHPUT_TARGET),
        Target("8 clients: errors", float(eight.errors), 0.0, False),
    ]


def run(plan: Plan) -> PartResult:
    result = PartResult("latency", "query latency over HTTP (POST /search) vs the bare cost")
    try:
        photos = paris250()
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    config = EmbedderConfig(backbone="vgg16", weights="random", max_side=plan.index_side)
    embedder = Embedder.create(config)
    queries = spread(photos[1:], QUERIES)
    payloads = [p.read_bytes() for p in queries]
    images = [load_image(p) for p in queries]
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as tmp:
        index_dir = build_index(embedder, spread(photos, plan.latency_index_images),
                                Path(tmp) / "index")
        with ImageIndex.open(index_dir, read_only=True) as index, \
                Service(index_dir, Path(tmp) / "service.log") as service:
            for payload in payloads:  # warm every query shape up in the service
                search_load(service.url, [payload], 1, 0.0)
            bare = [bare_cost(embedder, index, images)]
            one = search_load(service.url, payloads, 1, plan.latency_seconds[0])
            bare.append(bare_cost(embedder, index, images))
            eight = search_load(service.url, payloads, 8, plan.latency_seconds[1])
            bare.append(bare_cost(embedder, index, images))
    result.figures = {"index_images": plan.latency_index_images, "max_side": plan.index_side,
                      "backbone": "vgg16 (seeded random weights)", "k": K,
                      "query_files": [p.name for p in queries], **_figures(bare, [one, eight])}
    result.targets = _targets(bare, one, eight)
    one_f, eight_f = one.figures(), eight.figures()
    result.notes = [
        f"1 client: p50 {one_f['p50_ms']} ms, p99 {one_f['p99_ms']} ms; 8 clients: "
        f"{eight.throughput:.2f} req/s, p50 {eight_f['p50_ms']} ms, p99 {eight_f['p99_ms']} ms",
        f"bare: forward {bare[1].forward * 1000:.0f} ms, forward + search "
        f"{bare[1].cost * 1000:.0f} ms, {bare[1].throughput:.2f} forwards/s",
    ]
    return result
