"""Part 4: index scale — FAISS index types on synthetic 512-D descriptors at 10^5 and 10^6.

For Flat, IVF-Flat, IVF-PQ and HNSW: build time (training included), memory (the bytes the
index's arrays hold: vectors or codes, ids, centroids, graph links), per-query search time (one
query per call, as the service searches) and recall@10 against exact search, over a sweep of
the search parameter (``nprobe``, ``efSearch``). The recommended default per size is the
simplest setting with recall@10 >= 0.95 and <= 5 ms per query: Flat when it qualifies (exact,
nothing to train, removes natively), otherwise the fastest qualifying one. Inner product on
L2-normalised vectors, as the project's index uses. The data are described in
:mod:`bench.vectors`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import faiss
import numpy as np

from bench.plan import Plan
from bench.report import PartResult, Target
from bench.vectors import F32, I64, clustered, exact_neighbours, recall_at

__all__ = ["run"]

D = 512
K = 10
NLIST = 1024  # 4·sqrt(n) would be 4096 at 10^6: its k-means alone takes minutes on 2 cores
TRAIN_POINTS = 40 * NLIST  # faiss asks for >= 39 points per centroid
PQ_TRAIN_POINTS = 16_384  # 64 points per PQ centroid: enough, and 4x faster than faiss's 256
RECALL_TARGET = 0.95
MS_TARGET = 5.0
FLAT_TIMED_QUERIES = 20  # exhaustive search is slow and steady: a few queries time it well
SWEEPS: dict[str, tuple[str | None, list[int]]] = {
    "Flat": (None, [0]),
    f"IVF{NLIST},Flat": ("nprobe", [1, 2, 4, 8, 16, 32, 64, 128]),
    f"IVF{NLIST},PQ64": ("nprobe", [1, 2, 4, 8, 16, 32, 64, 128]),
    "HNSW32": ("efSearch", [16, 32, 64, 128, 256]),
}


@dataclass(frozen=True)
class Setting:
    """One search setting and what it gave."""

    param: str
    recall: float
    ms_per_query: float

    @property
    def qualifies(self) -> bool:
        return self.recall >= RECALL_TARGET and self.ms_per_query <= MS_TARGET


@dataclass
class Measured:
    """One index type at one size."""

    factory: str
    build_seconds: float
    memory_mb: float
    settings: list[Setting] = field(default_factory=list)


def index_bytes(index: faiss.Index) -> int:
    """Bytes held by the index's arrays (what it costs in memory, give or take headers)."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexHNSW):
        hnsw: Any = index.hnsw
        graph = 4 * (hnsw.neighbors.size() + hnsw.levels.size()) + 8 * hnsw.offsets.size()
        return int(graph + index_bytes(index.storage))
    codes = int(index.ntotal) * int(getattr(index, "code_size", 0))
    if isinstance(index, faiss.IndexIVF):
        ivf: Any = index
        pq = ivf.pq.M * ivf.pq.ksub * ivf.pq.dsub * 4 if isinstance(ivf, faiss.IndexIVFPQ) else 0
        return codes + 8 * int(index.ntotal) + index_bytes(ivf.quantizer) + int(pq)
    return codes


def per_query(index: faiss.Index, xq: F32) -> tuple[float, I64]:
    """Mean milliseconds of one-query searches, and the ids found."""
    found = np.empty((len(xq), K), dtype=np.int64)
    start = time.perf_counter()
    for i in range(len(xq)):
        found[i] = index.search(xq[i:i + 1], K)[1][0]
    return (time.perf_counter() - start) * 1000 / len(xq), found


def sweep(index: faiss.Index, factory: str, xq: F32, truth: I64) -> list[Setting]:
    """Recall and time for each value of the factory's search parameter (cheapest first)."""
    name, values = SWEEPS[factory]
    settings: list[Setting] = []
    for value in values:
        if name is None:
            queries = xq[:FLAT_TIMED_QUERIES]
            ms, found = per_query(index, queries)
            settings.append(Setting("exact", recall_at(found, truth[:len(queries)]), ms))
            continue
        faiss.ParameterSpace().set_index_parameter(index, name, value)
        ms, found = per_query(index, xq)
        settings.append(Setting(f"{name}={value}", recall_at(found, truth), ms))
        if settings[-1].recall >= 0.999 or ms > 10 * MS_TARGET:
            break  # the rest of the sweep would only be slower
    return settings


def build(factory: str, xb: F32, train: F32, centroids: F32 | None) -> tuple[faiss.Index, float]:
    """Build and fill one index; an IVF reuses ``centroids`` when given (its k-means is shared)."""
    start = time.perf_counter()
    index = faiss.index_factory(D, factory, faiss.METRIC_INNER_PRODUCT)
    if isinstance(index, faiss.IndexIVF):
        ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
        is_pq = isinstance(ivf, faiss.IndexIVFPQ)
        if is_pq:
            ivf.do_polysemous_training = False  # only for Hamming filtering, which we never use
        if centroids is not None:
            ivf.quantizer.add(centroids)
        index.train(train[:PQ_TRAIN_POINTS] if is_pq else train)
    index.add(xb)
    return index, time.perf_counter() - start


def measure_size(n: int, plan: Plan) -> tuple[list[Measured], list[str]]:
    """Every index type at ``n`` vectors (HNSW only up to ``plan.scale_hnsw_max``)."""
    data = clustered(n + plan.scale_queries, D, seed=n)
    xb, xq = data[:n], data[n:]
    train = xb[np.random.default_rng(0).choice(n, min(n, TRAIN_POINTS), replace=False)]
    truth = exact_neighbours(xb, xq, K)
    measured: list[Measured] = []
    notes: list[str] = []
    centroids: F32 | None = None
    coarse_seconds = 0.0
    for factory in SWEEPS:
        if factory.startswith("HNSW") and n > plan.scale_hnsw_max:
            notes.append(f"{factory} at {n:,} not built in {plan.mode} mode (its graph takes "
                         "several minutes on 2 cores): run `python -m bench --full --parts scale`")
            continue
        index, seconds = build(factory, xb, train, centroids)
        if factory.startswith("IVF") and centroids is None:
            ivf: Any = faiss.extract_index_ivf(index)
            centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
            coarse_seconds = seconds  # charged again to the IVF that reuses it
        elif factory.startswith("IVF"):
            seconds += coarse_seconds
        item = Measured(factory, round(seconds, 2), round(index_bytes(index) / 1e6, 1))
        item.settings = sweep(index, factory, xq, truth)
        measured.append(item)
        del index
    return measured, notes


def recommend(measured: list[Measured]) -> dict[str, Any] | None:
    """Flat if it qualifies, else the fastest qualifying setting; None when nothing does."""
    options = [(m, s) for m in measured for s in m.settings if s.qualifies]
    if not options:
        return None
    flat = [(m, s) for m, s in options if m.factory == "Flat"]
    m, s = flat[0] if flat else min(options, key=lambda o: o[1].ms_per_query)
    return {"factory": m.factory, "search": s.param, "recall_at_10": round(s.recall, 4),
            "ms_per_query": round(s.ms_per_query, 3), "memory_mb": m.memory_mb,
            "build_seconds": m.build_seconds}


def _size_figures(measured: list[Measured], notes: list[str]) -> dict[str, Any]:
    rows = [{**asdict(m), "settings": [{**asdict(s), "recall": round(s.recall, 4),
                                        "ms_per_query": round(s.ms_per_query, 3),
                                        "qualifies": s.qualifies} for s in m.settings]}
            for m in measured]
    return {"indexes": rows, "recommended": recommend(measured), "notes": notes}


def run(plan: Plan) -> PartResult:
    result = PartResult("scale", "FAISS index types at scale (synthetic 512-D descriptors)")
    sizes: dict[str, Any] = {}
    for n in plan.scale_sizes:
        measured, notes = measure_size(n, plan)
        sizes[str(n)] = _size_figures(measured, notes)
        best = sizes[str(n)]["recommended"]
        result.notes.append(f"{n:,}: " + (f"{best['factory']} ({best['search']}): recall@10 "
                            f"{best['recall_at_10']:.3f}, {best['ms_per_query']:.2f} ms/query, "
                            f"{best['memory_mb']:.0f} MB" if best else "nothing qualifies"))
        result.notes += notes
        if best:
            result.targets.append(Target(f"{n:,}: recall@10 of the recommended default",
                                         best["recall_at_10"], RECALL_TARGET))
            result.targets.append(Target(f"{n:,}: ms per query of the recommended default",
                                         best["ms_per_query"], MS_TARGET, False))
    result.figures = {"dimension": D, "k": K, "queries": plan.scale_queries, "nlist": NLIST,
                      "train_points": TRAIN_POINTS, "metric": "inner product, L2-normalised",
                      "faiss_threads": faiss.omp_get_max_threads(), "sizes": sizes}
    if 1_000_000 not in plan.scale_sizes:
        result.notes.append("10^6 not run in this mode: run `python -m bench --parts scale`")
    return result
