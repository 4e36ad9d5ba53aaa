"""Part "graph": the kept neighbour graph of a local index with DBA, on synthetic 512-D vectors.

An :class:`~retrieval.index.ImageIndex` with DBA (``dba_k`` 10) and a kept graph of
``graph_k`` 20 (what diffusion reads), Flat:

* **graph build**: one add of all ``n`` vectors — the exact graph (N² float32 candidates,
  ranked in float64), its rows, the records, DBA and FAISS, in one transaction (what an index
  without a graph also pays once, on its first open);
* **open with DBA** (target <= 3 s at 10^5): the graph is read back, the augmented vectors are
  the snapshot's; and the same open without a usable snapshot (after a crash: the augmented
  vectors are refilled from the graph, n·k·d, still no N² search);
* **one add** (target <= 100 ms at 10^5), median of a few single-image adds, and one remove;
* exactness: sampled rows of the kept graph against brute force in float64.

Part "graph-preset" (opt-in: ``--parts graph-preset``) measures the same at the width a preset
index keeps: ``graph_k`` 51 (the default diffusion's ``candidates`` 50, plus one for
``/similar``: :func:`indexer.build._graph_k`) and the presets' ``dba_k`` 2.

Data: :func:`bench.vectors.clustered`. Before the graph, opening a DBA index recomputed every
neighbourhood (N²·d in float64, ~minutes at 10^5).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.plan import Plan
from bench.report import PartResult, Target
from bench.vectors import clustered
from retrieval.index import ImageIndex, Manifest, NewImage
from retrieval.rerank import Diffusion

__all__ = ["run", "run_preset"]

D = 512
GRAPH_K = 20
DBA_K = 10
ADDS = 9
SAMPLED = 200
OPEN_TARGET_S = 3.0
ADD_TARGET_MS = 100.0
#: What ``cbir index build --preset`` keeps (every preset: default diffusion, DBA 2).
PRESET_GRAPH_K = max(Diffusion().k, Diffusion().candidates) + 1
PRESET_DBA_K = 2


def _manifest(graph_k: int, dba_k: int) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=512, pooling="crow",
                    dim=D, dba_k=dba_k, graph_k=graph_k)


def _items(start: int, n: int) -> list[NewImage]:
    return [NewImage(path=f"/synthetic/{i}.jpg", sha256=f"{i:064x}", width=512, height=384)
            for i in range(start, start + n)]


def _fill(path: Path, x: np.ndarray, manifest: Manifest) -> tuple[float, float]:
    """Seconds of the one add of everything, and of the close (the snapshot) after it."""
    index = ImageIndex.create(path, manifest)
    start = time.perf_counter()
    index.add(_items(0, len(x)), x)
    added = time.perf_counter()
    index.close()
    return added - start, time.perf_counter() - added


def _opened(path: Path) -> float:
    start = time.perf_counter()
    with ImageIndex.open(path):
        return time.perf_counter() - start


def _changes(path: Path, extra: np.ndarray, n: int, k: int) -> dict[str, Any]:
    """Single adds and one remove into the open index; sampled rows checked exactly."""
    with ImageIndex.open(path) as index:
        adds = []
        for i in range(len(extra)):
            start = time.perf_counter()
            index.add(_items(n + i, 1), extra[i:i + 1])
            adds.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        index.remove([n // 2])
        remove_ms = (time.perf_counter() - start) * 1000
        exact = _sampled_rows_exact(index, k)
    return {"add_ms": [round(a, 1) for a in adds],
            "add_ms_median": round(statistics.median(adds), 1),
            "remove_ms": round(remove_ms, 1), "sampled_rows_exact": exact}


def _sampled_rows_exact(index: ImageIndex, k: int) -> bool:
    ids = np.asarray(index.ids_after(0, 10**9), dtype=np.int64)
    xb = index.stored_vectors(ids.tolist()).astype(np.float64)
    rows = np.random.default_rng(0).choice(len(ids), SAMPLED, replace=False)
    sims = xb[rows] @ xb.T
    sims[np.arange(SAMPLED), rows] = -np.inf
    best = np.lexsort((np.broadcast_to(ids, sims.shape), -sims), axis=1)[:, :k]
    kept = index.neighbours(ids[rows].tolist())
    return bool(np.array_equal(kept.I, ids[best]))


def measure(n: int, graph_k: int = GRAPH_K, dba_k: int = DBA_K) -> dict[str, Any]:
    data = clustered(n + ADDS, D, seed=n)
    x, extra = data[:n], data[n:]
    root = Path(tempfile.mkdtemp(prefix="cbir-bench-graph-"))
    try:
        build_s, close_s = _fill(root / "index", x, _manifest(graph_k, dba_k))
        figures: dict[str, Any] = {"images": n, "build_s": round(build_s, 1),
                                   "first_close_s": round(close_s, 1)}
        opens = [_opened(root / "index") for _ in range(3)]
        figures["open_s_runs"] = [round(s, 2) for s in opens]
        figures["open_s"] = round(min(opens), 2)
        figures |= _changes(root / "index", extra, n, graph_k)
        (root / "index" / "index.faiss").unlink()
        figures["open_without_snapshot_s"] = round(_opened(root / "index"), 2)
        figures["store_mb"] = round((root / "index" / "store.sqlite").stat().st_size / 1e6, 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def run(plan: Plan) -> PartResult:
    """Part "graph": graph_k 20, DBA 10."""
    return _run(plan, "graph", GRAPH_K, DBA_K)


def run_preset(plan: Plan) -> PartResult:
    """Part "graph-preset": the width a preset index keeps."""
    return _run(plan, "graph-preset", PRESET_GRAPH_K, PRESET_DBA_K)


def _run(plan: Plan, part: str, graph_k: int, dba_k: int) -> PartResult:
    result = PartResult(part, f"kept neighbour graph (k {graph_k}) + DBA ({dba_k}): open, add, "
                        "build (synthetic 512-D)")
    n = plan.graph_images
    figures = measure(n, graph_k, dba_k)
    result.figures = {"dimension": D, "graph_k": graph_k, "dba_k": dba_k,
                      "faiss_threads": faiss.omp_get_max_threads(),
                      **figures}
    result.targets += [
        Target(f"{n:,}: seconds to open with DBA", figures["open_s"], OPEN_TARGET_S, False),
        Target(f"{n:,}: ms per single add (median)", figures["add_ms_median"], ADD_TARGET_MS,
               False),
    ]
    result.notes.append(f"graph of {n:,} built in {figures['build_s']} s (one add of all, "
                        "exact; records, DBA and FAISS included)")
    result.notes.append(f"open without a snapshot (augmented vectors refilled from the graph): "
                        f"{figures['open_without_snapshot_s']} s")
    if not figures["sampled_rows_exact"]:
        result.status, result.reason = "failed", "sampled graph rows differ from brute force"
    if n < 100_000:
        result.notes.append(f"10^5 not run in this mode: run `python -m bench --parts {part}`")
    return result
