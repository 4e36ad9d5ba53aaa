"""The kept neighbour graph of a local index, in memory: :class:`GraphKeeper`.

It holds every stored image's raw vector (float32) and its top-``k`` neighbours by raw cosine
(ids and float64 cosines, best first, ties by the lower id, itself excluded: the
:class:`~retrieval.rerank.NeighbourGraph` shape). A change is *planned* first
(:meth:`GraphKeeper.plan`, nothing mutated: the rows to write in the store's transaction) and
*applied* (:meth:`GraphKeeper.apply`) once that transaction committed, so a failed add or remove
leaves the graph as it was. A plan touches only what changes:

* an added vector gets its own top-k, and enters the rows of the vectors it beats the k-th
  neighbour of (found by one float32 pass ``n × m``, then ranked exactly);
* the rows that held a removed vector are recomputed against what remains.

Search is exact (:func:`._graph_search.exact_top`: equal to :func:`retrieval.rerank.knn_graph`)
while the collection holds at most :data:`EXACT_MAX` vectors, or always when no approximate
search is offered; beyond it, with an ``ann`` search (the index's own trained FAISS index), the
old vectors' candidates come from that search and are ranked exactly (the rows stay exact on
what was found; recall is the index's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from retrieval.index.local._graph_search import Block, exact_top
from retrieval.rerank import NeighbourGraph

__all__ = ["EXACT_MAX", "AnnSearch", "GraphDelta", "GraphKeeper"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Largest collection searched exactly for the graph (``make bench``'s graph part: one add into
#: 10^5 takes ~75 ms in all, the graph's float32 pass growing linearly; a build is N²·d, ~4 min
#: at 10^5 on 2 cores, so ~16 min at this size).
EXACT_MAX = 200_000
#: ``ann(xq, c)``: labels (nq, c) of the best ``c`` stored vectors found approximately, or None
#: when no approximate search can answer now (then the search is exact).
AnnSearch = Callable[[F32, int], I64 | None]
_PREFILTER_CHUNK = 65_536
#: Adds of at most this many vectors score them against the old ones in one float32 product
#: (n × m), read by both directions (their own top-k, and the rows they enter).
_FUSED_MAX = 64


@dataclass(frozen=True)
class GraphDelta:
    """A planned change: ``gone`` ids leave, ``new_ids`` (vectors ``new_x``) arrive, and the rows
    of ``ids`` (new and changed) become ``I`` / ``D``; ``before`` are those rows' previous
    neighbour ids (all -1 for a new one)."""

    gone: I64
    new_ids: I64
    new_x: F32
    ids: I64
    I: I64  # noqa: E741 - the faiss name
    D: F64
    before: I64


class GraphKeeper:
    """Raw vectors by id and each one's top-k raw neighbours (module docstring)."""

    def __init__(self, k: int, d: int, *, exact_max: int = EXACT_MAX,
                 ann: AnnSearch | None = None) -> None:
        if k < 1:
            raise ValueError(f"graph k must be positive, got {k}")
        self.k, self.d = k, d
        self.exact_max = exact_max
        self.ann = ann
        self._n = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._x = np.zeros((0, d), dtype=np.float32)
        self._I = np.zeros((0, k), dtype=np.int64)
        self._D = np.zeros((0, k), dtype=np.float64)
        self._row: dict[int, int] = {}
        self._max_norm = 0.0

    @classmethod
    def loaded(cls, k: int, ids: I64, x: F32, graph_i: I64, graph_d: F64, *,
               exact_max: int = EXACT_MAX, ann: AnnSearch | None = None) -> GraphKeeper:
        """A keeper holding a stored graph (rows in the order of ``ids``). ``x`` (at least
        ``len(ids)`` rows, C-contiguous float32) is taken as the keeper's buffer, not copied:
        its first rows are the vectors of ``ids``, the rest is room for adds."""
        keeper = cls(k, x.shape[1], exact_max=exact_max, ann=ann)
        n, cap = len(ids), len(x)
        keeper._x = np.ascontiguousarray(x, dtype=np.float32)
        keeper._ids = np.empty(cap, dtype=np.int64)
        keeper._I = np.empty((cap, k), dtype=np.int64)
        keeper._D = np.empty((cap, k), dtype=np.float64)
        keeper._ids[:n] = ids
        keeper._I[:n], keeper._D[:n] = graph_i, graph_d
        keeper._n = n
        keeper._row = {int(i): r for r, i in enumerate(ids.tolist())}
        keeper._max_norm = _max_norm(x[:n])
        return keeper

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> I64:
        return self._ids[:self._n].copy()

    def neighbours(self, ids: Sequence[int] | I64) -> NeighbourGraph:
        """The rows of ``ids`` in that order; an unknown id gets an all-missing row."""
        want = np.asarray([int(i) for i in ids], dtype=np.int64)
        rows = np.asarray([self._row.get(int(i), -1) for i in want], dtype=np.int64)
        known = rows >= 0
        out_i = np.full((len(want), self.k), -1, dtype=np.int64)
        out_d = np.full((len(want), self.k), -np.inf)
        out_i[known], out_d[known] = self._I[rows[known]], self._D[rows[known]]
        return NeighbourGraph(want, out_i, out_d)

    def raw(self, ids: Sequence[int] | I64) -> F32:
        """The raw vectors of ``ids`` (all known)."""
        rows = np.asarray([self._row[int(i)] for i in np.asarray(ids).reshape(-1)],
                          dtype=np.int64)
        return self._x[rows]

    def graph(self) -> NeighbourGraph:
        """Every row, in the keeper's row order."""
        n = self._n
        return NeighbourGraph(self._ids[:n].copy(), self._I[:n].copy(), self._D[:n].copy())

    # -- planning -----------------------------------------------------------------------------

    def plan(self, gone: Sequence[int] | I64, new_ids: Sequence[int] | I64,
             new_x: npt.ArrayLike) -> GraphDelta:
        """The rows that change when ``gone`` leave and ``new_ids`` arrive (nothing mutated)."""
        gone_ids = np.asarray([int(i) for i in gone if int(i) in self._row], dtype=np.int64)
        nid = np.asarray(new_ids, dtype=np.int64).reshape(-1)
        nx = np.ascontiguousarray(np.asarray(new_x, dtype=np.float32).reshape(len(nid), self.d))
        n = self._n
        old = Block(self._x[:n], self._ids[:n], max(self._max_norm, _max_norm(nx)),
                    *self._ann_parts(n))
        new = Block(nx, nid, old.max_norm)
        fused = (self._x[:n] @ nx.T if 0 < len(nid) <= _FUSED_MAX and old.search is None
                 else None)  # (n, m)
        if fused is not None:
            old = Block(old.x, old.labels, old.max_norm, scores=np.ascontiguousarray(fused.T))
        gone_rows = np.asarray([self._row[int(i)] for i in gone_ids], dtype=np.int64)
        live = np.ones(n, dtype=bool)
        live[gone_rows] = False
        stale = np.nonzero(live & np.isin(self._I[:n], gone_ids).any(axis=1))[0] \
            if len(gone_ids) else np.zeros(0, dtype=np.int64)
        plain = Block(old.x, old.labels, old.max_norm, old.search, old.vectors)
        parts = [self._recomputed(stale, [plain, new], gone_ids),
                 _fresh_rows(nid, nx, [old, new], self.k, gone_ids)]
        live[stale] = False
        if old.search is not None:  # approximate: reverse neighbours among the forward ones
            near = np.asarray([self._row.get(int(i), -1) for i in np.unique(parts[1][1])],
                              dtype=np.int64)
            live &= np.isin(np.arange(n), near[near >= 0])
        parts.append(self._merged(np.nonzero(live)[0], new, nid,
                                  None if fused is None else fused.max(axis=1)))
        ids = np.concatenate([p[0] for p in parts])
        return GraphDelta(gone_ids, nid, nx, ids, np.concatenate([p[1] for p in parts]),
                          np.concatenate([p[2] for p in parts]),
                          np.concatenate([p[3] for p in parts]))

    def _ann_parts(self, n: int) -> tuple[Callable[[F32, int], I64] | None,
                                          Callable[[I64], F32] | None]:
        if self.ann is None or n <= self.exact_max:
            return None, None
        ann = self.ann

        def search(xq: F32, c: int) -> I64:
            found = ann(xq, c)
            if found is None:
                raise _NoAnn
            return found

        return search, self.raw

    def _recomputed(self, rows: I64, blocks: list[Block], gone: I64) -> _Rows:
        """Rows that lost a neighbour: their top-k against what remains."""
        ids = self._ids[rows]
        ti, td = _top(self._x[rows], ids, blocks, self.k, gone)
        return ids, ti, td, self._I[rows]

    def _merged(self, rows: I64, new: Block, nid: I64, best: F32 | None) -> _Rows:
        """Old rows (``rows``) whose top-k a new vector enters, with that vector merged in;
        ``best``: each old row's best float32 score against the new vectors, if known."""
        empty: _Rows = (np.zeros(0, np.int64), np.zeros((0, self.k), np.int64),
                        np.zeros((0, self.k)), np.zeros((0, self.k), np.int64))
        if not len(rows) or not len(nid):
            return empty
        kth = self._D[rows, -1]
        eps = self.d * 2.0 ** -23 * self._max_norm * new.max_norm
        if best is not None:
            hit = best[rows] > kth - eps
        else:
            hit = np.zeros(len(rows), dtype=bool)
            for start in range(0, len(rows), _PREFILTER_CHUNK):
                part = rows[start:start + _PREFILTER_CHUNK]
                top, _ = faiss.knn(self._x[part], new.x, 1, metric=faiss.METRIC_INNER_PRODUCT)
                hit[start:start + len(part)] = top[:, 0] > kth[start:start + len(part)] - eps
        cand = rows[hit]
        ids = self._ids[cand]
        ti, td = exact_top(self._x[cand], ids, [new], self.k, np.zeros(0, np.int64),
                           prior=(self._I[cand], self._D[cand]))
        changed = np.any(ti != self._I[cand], axis=1)
        return ids[changed], ti[changed], td[changed], self._I[cand][changed]

    # -- applying -----------------------------------------------------------------------------

    def apply(self, delta: GraphDelta) -> None:
        """Make ``delta`` (planned on this very state) the state."""
        for image_id in delta.gone.tolist():
            self._drop(self._row[int(image_id)])
        n, m = self._n, len(delta.new_ids)
        self._reserve(n + m)
        self._ids[n:n + m], self._x[n:n + m] = delta.new_ids, delta.new_x
        self._row.update((int(i), n + r) for r, i in enumerate(delta.new_ids.tolist()))
        self._n = n + m
        self._max_norm = max(self._max_norm, _max_norm(delta.new_x))
        rows = np.asarray([self._row[int(i)] for i in delta.ids], dtype=np.int64)
        self._I[rows], self._D[rows] = delta.I, delta.D

    def _drop(self, row: int) -> None:
        """Remove one row, moving the last row into its place."""
        last = self._n - 1
        del self._row[int(self._ids[row])]
        if row != last:
            self._ids[row], self._x[row] = self._ids[last], self._x[last]
            self._I[row], self._D[row] = self._I[last], self._D[last]
            self._row[int(self._ids[row])] = row
        self._n = last

    def _reserve(self, n: int) -> None:
        cap = len(self._ids)
        if n <= cap:
            return
        cap = max(n, 2 * cap, 1024)
        for name in ("_ids", "_x", "_I", "_D"):  # rows past self._n are never read
            old = getattr(self, name)
            grown = np.empty((cap, *old.shape[1:]), dtype=old.dtype)
            grown[:self._n] = old[:self._n]
            setattr(self, name, grown)


_Rows = tuple[I64, I64, F64, I64]


class _NoAnn(Exception):
    """The approximate search cannot answer now: search exactly."""


def _top(xq: F32, own: I64, blocks: list[Block], k: int, excluded: I64) -> tuple[I64, F64]:
    try:
        return exact_top(xq, own, blocks, k, excluded)
    except _NoAnn:
        exact = [Block(b.x, b.labels, b.max_norm) for b in blocks]
        return exact_top(xq, own, exact, k, excluded)


def _fresh_rows(nid: I64, nx: F32, blocks: list[Block], k: int, gone: I64) -> _Rows:
    ti, td = _top(nx, nid, blocks, k, gone)
    return nid, ti, td, np.full((len(nid), k), -1, dtype=np.int64)


def _max_norm(x: F32) -> float:
    """The largest row norm (computed in float32, rounded up: an upper bound)."""
    if not len(x):
        return 0.0
    return float(np.sqrt(np.einsum("nd,nd->n", x, x).max())) * (1 + 1e-4)
