"""The read side of an :class:`~retrieval.index.local.ImageIndex`, as functions of its parts:
search (whole index or among given ids) and hits with their records. The owner holds its read
lock around them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retrieval.errors import ArtifactError
from retrieval.index._manifest import Manifest
from retrieval.index._records import Hit
from retrieval.index.local._live import Live
from retrieval.index.local._store import Store

__all__ = ["exact_among", "search", "with_records"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def exact_among(xq: F32, k: int, ids: Sequence[int], xb: F32, metric: str) -> tuple[F32, I64]:
    """Exact search of ``xq`` among the candidates ``ids`` (rows of ``xb``), -1 padded."""
    out_d = np.full((len(xq), k), -np.inf if metric == "inner_product" else np.inf, np.float32)
    out_i = np.full((len(xq), k), -1, np.int64)
    if not len(ids) or not len(xq):
        return out_d, out_i
    cand = np.asarray(ids, dtype=np.int64)
    if metric == "inner_product":
        scores = xq @ xb.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        scores = ((xq[:, None, :] - xb[None, :, :]) ** 2).sum(axis=2)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    n = order.shape[1]
    out_d[:, :n] = np.take_along_axis(scores, order, axis=1)
    out_i[:, :n] = cand[order]
    return out_d, out_i


def search(store: Store, live: Live, manifest: Manifest, queries: F32, k: int,
           ids: Sequence[int] | None) -> tuple[F32, I64]:
    """FAISS's ``k`` nearest of each query, or the exact ones among ``ids`` (unknown ids ignored).

    :class:`ArtifactError` while stored images wait for an untrained index.
    """
    if ids is not None:
        if _scan_with_selector(live, len(ids)):
            return live.vectors.search_among(queries, k, np.asarray(list(ids), dtype=np.int64))
        present, xb = store.vectors_present(list(ids))
        return exact_among(queries, k, present, xb, manifest.metric)
    if not live.vectors.is_trained and store.count():
        raise ArtifactError(f"index {store.path.parent} holds {store.count()} images but its "
                            f"{manifest.faiss_factory!r} index is not trained; call train()")
    return live.search(queries, k)


#: Among this many ids or more (and at least ``ntotal / SCAN_RATIO``), a Flat index without DBA
#: scans every vector with an id selector instead of reading the candidates' vectors from SQLite:
#: a scan costs ~0.1 µs a vector, a read from the store ~17 µs (``python -m bench --parts
#: features``: a 10 % tag filter at 10⁵ images, 172 ms → 29 ms with finding the ids).
SELECTOR_MIN_IDS = 256
SCAN_RATIO = 128


def _scan_with_selector(live: Live, n_ids: int) -> bool:
    """Whether a search among ``n_ids`` ids is cheaper, and as exact, as a selector scan: the
    index holds the stored vectors themselves (no DBA) and scans them all (Flat)."""
    vectors = live.vectors
    return (n_ids >= max(SELECTOR_MIN_IDS, vectors.ntotal // SCAN_RATIO) and live.dba is None
            and vectors.exact)


def with_records(store: Store, distances: F32, labels: I64) -> list[list[Hit]]:
    """Each row's hits with their records; ids removed meanwhile are dropped."""
    wanted = np.unique(labels[labels >= 0]).tolist()
    records = {r.id: r for r in store.get(wanted)}
    return [[Hit(int(i), float(s), records[int(i)])
             for s, i in zip(row_d, row_i, strict=True) if int(i) in records]
            for row_d, row_i in zip(distances, labels, strict=True)]
