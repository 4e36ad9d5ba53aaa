"""Parts ``ray`` and ``milvus``: the scale-out engines beside the embedded ones (README).

``ray``: ``cbir index build --engine ray`` (a local Ray on this machine, started by the command)
images/s ÷ the local ``cbir index build`` images/s on the same paris250 images, both as the real
command line in a subprocess, VGG16 with seeded random weights at longer side 224 like part
``indexing``. Each build's own images/s counts from the first image to the last vector stored;
the Ray one includes starting Ray and its actors (≈30 s here), so on one small machine the ratio
measures that overhead, not what a cluster gains.

``milvus``: the same synthetic 512-D vectors (:mod:`bench.vectors`) in the FAISS+SQLite index,
in Milvus Lite and in a real Milvus server (:mod:`indexer.milvus_server`, started by the part
when the ``milvus`` package is there and no other server holds its ports), all through the store
seam (:func:`retrieval.index.create_index`), HNSW32 everywhere, at each of ``milvus_sizes``:
insert rate (until indexed), then one query per call (as the service searches) at efSearch 16
and 64: p50 / p95 milliseconds and recall@10 against exact search. The Ray part also reports
the build's start-up (until its first vectors) apart from its steady state after it.
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
_PACE = re.compile(r"pool warm after ([\d.]+) s \(start-up\), then ([\d.]+) images/s")


def _build(images: Path, index: Path, side: int, *extra: str) -> tuple[float, float, str]:
    """images/s of one ``cbir index build`` (its own summary line), its wall time, its log."""
    argv = [sys.executable, "-m", "indexer", "index", "build", "--images", str(images),
            "--index", str(index), "--backbone", "vgg16", "--weights", "random",
            "--max-side", str(side), "--no-progress", *extra]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    match = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"cbir index build {extra} failed: {done.stderr[-2000:]}")
    return float(match.group(3)), time.perf_counter() - start, done.stderr


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
        local, local_wall, _ = _build(folder, Path(tmp) / "local", plan.index_side)
        on_ray, ray_wall, log = _build(folder, Path(tmp) / "ray", plan.index_side,
                                       "--engine", "ray")
    pace = _PACE.search(log)
    startup, steady = (float(pace.group(1)), float(pace.group(2))) if pace else (0.0, 0.0)
    ratio, steady_ratio = on_ray / local, steady / local
    result.figures = {"images": len(paths), "max_side": plan.index_side,
                      "local_images_per_s": local, "ray_images_per_s": on_ray,
                      "ray_startup_seconds": startup, "ray_steady_images_per_s": steady,
                      "local_wall_seconds": round(local_wall, 1),
                      "ray_wall_seconds": round(ray_wall, 1), "ratio": round(ratio, 3),
                      "steady_ratio": round(steady_ratio, 3)}
    result.targets = [Target("Ray build / local build (images/s)", ratio, RAY_TARGET)]
    result.notes = [f"{len(paths)} images: local {local:.2f} images/s, Ray {on_ray:.2f} images/s "
                    f"with start-up; Ray's pool warm after {startup:.1f} s, then "
                    f"{steady:.2f} images/s (steady state: {steady_ratio:.2f}x local)"]
    return result


def _manifest(factory: str) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=224, pooling="sum",
                    dim=D, faiss_factory=factory)


def _engine(spec: StoreSpec, where: Path, xb: F32, xq: F32, truth: Any) -> dict[str, Any]:
    """Insert ``xb`` (and wait until it is indexed), then one query per call at efSearch 16 and
    64: recall@10, p50 and p95 milliseconds."""
    index = create_index(where / "index", _manifest("HNSW32"), spec)
    try:
        start = time.perf_counter()
        ids: list[int] = []
        for s in range(0, len(xb), ADD_BATCH):
            chunk = xb[s:s + ADD_BATCH]
            ids += index.add([NewImage(f"v/{s + i}", f"{s + i:064x}", 1, 1)
                              for i in range(len(chunk))], chunk)
        flush = getattr(index, "flush", None)
        if flush is not None:
            flush()
        seconds = time.perf_counter() - start
        out: dict[str, Any] = {"insert_seconds": round(seconds, 1),
                               "inserts_per_s": round(len(xb) / seconds)}
        row_of = {image_id: row for row, image_id in enumerate(ids)}  # ids may be sparse
        for ef in (16, 64):
            index.set_search_params(ef_search=ef)
            found = np.full((len(xq), K), -1, dtype=np.int64)
            times = []
            for i in range(len(xq)):
                t = time.perf_counter()
                labels = index.search(xq[i:i + 1], K)[1][0]
                times.append((time.perf_counter() - t) * 1000)
                found[i] = [row_of.get(int(j), -1) for j in labels]
            out[f"ef{ef}"] = {"recall_at_10": round(recall_at(found, truth), 4),
                              "p50_ms": round(float(np.percentile(times, 50)), 2),
                              "p95_ms": round(float(np.percentile(times, 95)), 2)}
        return out
    finally:
        index.close()


def _server(tmp: Path) -> tuple[Any, str]:
    """A Milvus server for the part (None and why not, when it cannot run here)."""
    try:
        import milvus  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return None, "the milvus package is not installed (pip install '.[milvus]')"
    from indexer.milvus_server import MilvusServer, MilvusServerError

    server = MilvusServer(tmp / "server")
    server.root.mkdir()
    try:
        return server.start(), ""
    except MilvusServerError as exc:
        return None, str(exc).splitlines()[0]


def run_milvus(plan: Plan) -> PartResult:
    result = PartResult("milvus", "Milvus (Lite and a server) beside FAISS: insert rate, search "
                                  "p50 and recall@10")
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError:
        result.status, result.reason = "skipped", "pip install '.[milvus]'"
        return result
    by_size: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cbir-bench-milvus-") as tmp:
        server, why = _server(Path(tmp))
        try:
            for n in plan.milvus_sizes:
                data = clustered(n + plan.milvus_queries, D, seed=n)
                xb, xq = data[:n], data[n:]
                truth = exact_neighbours(xb, xq, K)
                here = Path(tmp) / str(n)
                sides = {"faiss": _engine(StoreSpec(), here / "faiss", xb, xq, truth),
                         "milvus_lite": _engine(StoreSpec("milvus", str(here / "m.db"), "bench"),
                                                here / "lite", xb, xq, truth)}
                if server is not None:
                    sides["milvus_server"] = _engine(
                        StoreSpec("milvus", server.uri, f"bench{n}"), here / "server", xb, xq,
                        truth)
                by_size[str(n)] = sides
                result.notes.append(_note(n, sides))
        finally:
            if server is not None:
                server.stop()
    if why:
        result.notes.append(f"no Milvus server: {why}")
    result.figures = {"queries": plan.milvus_queries, "index": "HNSW32 (efConstruction 40)",
                      "by_size": by_size}
    return result


def _note(n: int, sides: dict[str, Any]) -> str:
    parts = [f"{name} {v['inserts_per_s']} inserts/s, ef64 p50 {v['ef64']['p50_ms']} ms recall "
             f"{v['ef64']['recall_at_10']}" for name, v in sides.items()]
    return f"{n} vectors: " + "; ".join(parts)
