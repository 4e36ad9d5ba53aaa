"""Parts ``ray`` and ``milvus``: the scale-out engines beside the embedded ones (README).

``ray``: ``cbir index build --engine ray`` (a local Ray on this machine, started by the command)
images/s ÷ the local ``cbir index build`` images/s on the same paris250 images, both as the real
command line in a subprocess, VGG16 with seeded random weights at longer side 224 like part
``indexing``. Each build's own images/s counts from the first image to the last vector stored;
the Ray one includes starting Ray and its actors (≈30 s here), so on one small machine the ratio
measures that overhead, not what a cluster gains.

``milvus``: the same synthetic 512-D vectors (:mod:`bench.vectors`) in Milvus Lite and in the
FAISS+SQLite index, both through the store seam (:func:`retrieval.index.create_index`), HNSW32 on
both: insert rate, then one query per call (as the service searches) at efSearch 16 and 64,
recall@10 against exact search.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.images import link_folder
from bench.plan import Plan
from bench.report import PartResult, Target
from bench.shared import REPO, Missing, paris250, spread
from bench.vectors import F32, clustered, exact_neighbours, recall_at
from retrieval import Manifest
from retrieval.index import NewImage, StoreSpec, create_index

__all__ = ["run_milvus", "run_ray"]

RAY_TARGET = 0.8
K = 10
D = 512
ADD_BATCH = 5_000
_SUMMARY = re.compile(r"indexed (\d+) images in ([\d.]+) s \(([\d.]+) images/s\)")


def _build(images: Path, index: Path, side: int, *extra: str) -> tuple[float, float]:
    argv = [sys.executable, "-m", "indexer", "-q", "index", "build", "--images", str(images),
            "--index", str(index), "--backbone", "vgg16", "--weights", "random",
            "--max-side", str(side), "--no-progress", *extra]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    match = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"cbir index build {extra} failed: {done.stderr[-2000:]}")
    return float(match.group(3)), time.perf_counter() - start


def run_ray(plan: Plan) -> PartResult:
    result = PartResult("ray", "Ray Data build ÷ local build (images/s, one machine)")
    try:
        import ray  # noqa: F401
    except ImportError:
        result.status, result.reason = "skipped", "ray is not installed (pip install '.[ray]')"
        return result
    try:
        paths = spread(paris250(), plan.ray_images)
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    with tempfile.TemporaryDirectory(prefix="cbir-bench-ray-") as tmp:
        folder = link_folder(paths, Path(tmp) / "images")
        local, local_wall = _build(folder, Path(tmp) / "local", plan.index_side)
        on_ray, ray_wall = _build(folder, Path(tmp) / "ray", plan.index_side, "--engine", "ray")
    ratio = on_ray / local
    result.figures = {"images": len(paths), "max_side": plan.index_side,
                      "local_images_per_s": local, "ray_images_per_s": on_ray,
                      "local_wall_seconds": round(local_wall, 1),
                      "ray_wall_seconds": round(ray_wall, 1), "ratio": round(ratio, 3)}
    result.targets = [Target("Ray build / local build (images/s)", ratio, RAY_TARGET)]
    result.notes = [f"{len(paths)} images: local {local:.2f} images/s, Ray {on_ray:.2f} images/s "
                    "(Ray's includes starting Ray and its actors)"]
    return result


def _manifest(factory: str) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=224, pooling="sum",
                    dim=D, faiss_factory=factory)


def _engine(spec: StoreSpec, where: Path, xb: F32, xq: F32, truth: Any) -> dict[str, Any]:
    index = create_index(where / "index", _manifest("HNSW32"), spec)
    try:
        start = time.perf_counter()
        for s in range(0, len(xb), ADD_BATCH):
            chunk = xb[s:s + ADD_BATCH]
            index.add([NewImage(f"v/{s + i}", f"{s + i:064x}", 1, 1) for i in range(len(chunk))],
                      chunk)
        flush = getattr(index, "flush", None)
        if flush is not None:
            flush()
        out: dict[str, Any] = {"insert_seconds": round(time.perf_counter() - start, 1)}
        for ef in (16, 64):
            index.set_search_params(ef_search=ef)
            found = np.empty((len(xq), K), dtype=np.int64)
            t = time.perf_counter()
            for i in range(len(xq)):
                found[i] = index.search(xq[i:i + 1], K)[1][0] - 1  # ids start at 1
            ms = (time.perf_counter() - t) * 1000 / len(xq)
            out[f"ef{ef}"] = {"recall_at_10": round(recall_at(found, truth), 4),
                              "ms_per_query": round(ms, 2)}
        return out
    finally:
        index.close()


def run_milvus(plan: Plan) -> PartResult:
    result = PartResult("milvus", "Milvus Lite beside FAISS: search latency and recall@10")
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        result.status, result.reason = "skipped", "pip install '.[milvus]'"
        return result
    n = plan.milvus_vectors
    data = clustered(n + plan.milvus_queries, D, seed=n)
    xb, xq = data[:n], data[n:]
    truth = exact_neighbours(xb, xq, K)
    with tempfile.TemporaryDirectory(prefix="cbir-bench-milvus-") as tmp:
        faiss_side = _engine(StoreSpec(), Path(tmp) / "faiss", xb, xq, truth)
        milvus_side = _engine(StoreSpec("milvus", str(Path(tmp) / "m.db"), "bench"),
                              Path(tmp) / "milvus", xb, xq, truth)
    result.figures = {"vectors": n, "queries": len(xq), "index": "HNSW32 (efConstruction 40)",
                      "faiss": faiss_side, "milvus_lite": milvus_side}
    result.notes = [f"{n} vectors, ef 64: FAISS {faiss_side['ef64']['ms_per_query']} ms "
                    f"recall {faiss_side['ef64']['recall_at_10']}, Milvus Lite "
                    f"{milvus_side['ef64']['ms_per_query']} ms recall "
                    f"{milvus_side['ef64']['recall_at_10']}"]
    return result
