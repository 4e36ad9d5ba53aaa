"""Part "diffusion": per-query cost of diffusion re-ranking beyond the forward pass.

On synthetic clustered descriptors (:func:`bench.vectors.clustered`, 512-D) at each size of
``plan.diffusion_sizes`` (250 and 10^5 by default): the collection's kNN graph is built once with
FAISS (exact at small sizes, IVF beyond — the bench times the query, not the graph), then each
query (a fresh draw) is timed for the first hits (top k from that same FAISS index: Flat, or IVF
with 32 probes as an index of 10^5 would be) and for the kernel the
index's search runs (:func:`retrieval.rerank.diffusion_ranking`: shortlist grown through the
graph, mutual kNN affinity, conjugate gradient), with the default :class:`Diffusion`. The graph
rows are read from memory, as a store that keeps them would answer. Target: first hits plus
diffusion at most 20 ms per query at 10^5 on 2 cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import faiss
import numpy as np
import numpy.typing as npt

from bench.plan import Plan
from bench.report import PartResult, Target
from bench.vectors import clustered
from retrieval.rerank import Diffusion, NeighbourGraph, diffusion_ranking

__all__ = ["run"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
TARGET_MS = 20.0
EXACT_UP_TO = 20_000


def _graph(xb: F32, k: int) -> tuple[NeighbourGraph, faiss.Index]:
    """Top-k neighbours of every vector (itself dropped) and the index that found them: Flat,
    or IVF with 32 probes (what an index of that size would search with)."""
    n, d = xb.shape
    if n <= EXACT_UP_TO:
        index: faiss.Index = faiss.IndexFlatIP(d)
    else:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, int(4 * np.sqrt(n)), faiss.METRIC_INNER_PRODUCT)
        index.train(xb)
        index.nprobe = 32
    index.add(xb)
    sims, ids = index.search(xb, k + 1)
    own = ids == np.arange(n)[:, None]
    keep = np.argsort(own, axis=1, kind="stable")[:, :k]  # self moved last, then cut
    nb = np.take_along_axis(ids, keep, axis=1).astype(np.int64)
    dd = np.take_along_axis(sims, keep, axis=1).astype(np.float64)
    graph = NeighbourGraph(np.arange(n, dtype=np.int64), nb, np.where(nb >= 0, dd, -np.inf))
    return graph, index


def _one_size(n: int, queries: int, params: Diffusion) -> dict[str, float]:
    xb = clustered(n, seed=1)
    xq = clustered(queries, seed=2)
    start = time.perf_counter()
    graph, index = _graph(xb, max(params.k, params.candidates))
    graph_s = time.perf_counter() - start

    def rows(ids: I64) -> NeighbourGraph:
        return NeighbourGraph(ids, graph.I[ids], graph.D[ids])

    def vectors(ids: I64) -> F32:
        return xb[ids]

    search_ms: list[float] = []
    diffusion_ms: list[float] = []
    sizes: list[int] = []
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query at a time: spinning OpenMP workers would only
    try:                          # steal the cores from the kernel that follows each search
        _time_queries(xq, index, rows, vectors, params, (search_ms, diffusion_ms, sizes))
    finally:
        faiss.omp_set_num_threads(threads)
    total = np.asarray(search_ms) + np.asarray(diffusion_ms)
    return {"n": n, "queries": queries, "graph_build_s": round(graph_s, 2),
            "graph_exact": n <= EXACT_UP_TO,
            "first_hits_ms_p50": round(float(np.median(search_ms)), 3),
            "diffusion_ms_p50": round(float(np.median(diffusion_ms)), 3),
            "diffusion_ms_p95": round(float(np.percentile(diffusion_ms, 95)), 3),
            "total_ms_p50": round(float(np.median(total)), 3),
            "total_ms_mean": round(float(np.mean(total)), 3),
            "shortlist_mean": round(float(np.mean(sizes)), 1),
            "graph_bytes_per_image": graph.I.shape[1] * (8 + 4)}


def _time_queries(xq: F32, index: faiss.Index, rows: Callable[[I64], NeighbourGraph],
                  vectors: Callable[[I64], F32], params: Diffusion,
                  out: tuple[list[float], list[float], list[int]]) -> None:
    """Per query: the first hits' search time, the kernel's time (ms) and the shortlist size."""
    search_ms, diffusion_ms, sizes = out
    for q in xq:
        t0 = time.perf_counter()
        _, first = index.search(q[None], params.k)
        t1 = time.perf_counter()
        ranked, _ = diffusion_ranking(q, first[0], rows, vectors, params)
        t2 = time.perf_counter()
        search_ms.append(1e3 * (t1 - t0))
        diffusion_ms.append(1e3 * (t2 - t1))
        sizes.append(len(ranked))


def run(plan: Plan) -> PartResult:
    params = Diffusion()
    result = PartResult("diffusion", "Diffusion re-ranking: per-query cost beyond the forward")
    result.figures["params"] = params.to_dict()
    for n in plan.diffusion_sizes:
        result.figures[str(n)] = _one_size(n, plan.diffusion_queries, params)
    largest = result.figures[str(max(plan.diffusion_sizes))]
    result.targets.append(Target(f"first hits + diffusion p50 at {largest['n']} (ms)",
                                 largest["total_ms_p50"], TARGET_MS, higher_is_better=False))
    result.notes.append("graph bytes per image: k neighbour ids (int64) + cosines (float32) "
                        "as a store might keep them; the cost excludes the forward pass; FAISS "
                        "runs single-threaded while queries are timed (one query at a time)")
    return result
