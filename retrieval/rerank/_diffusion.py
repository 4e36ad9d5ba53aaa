"""Diffusion re-ranking (Iscen, Tolias, Avrithis, Furon & Chum, "Efficient diffusion on region
manifolds", CVPR 2017), on the query's shortlist of the collection's kNN graph.

The one kernel serving and evaluation share, pure functions over arrays:

* :func:`grow_shortlist` — the query's first hits, grown through the graph ``hops`` times (each
  node's best neighbour first), capped: the shortlist follows the size of the query's
  neighbourhood, not a constant; it returns the shortlist's graph rows, read once.
* :func:`affinity` — the graph cut down to the shortlist: of each row's first ``candidates``
  neighbours inside it the ``k`` nearest by the *vectors searched* (DBA-augmented where the index
  has DBA: DBA before the graph is worth +0.03 on paris250, and the kept graph is over the raw
  vectors), kept when mutual, weighted ``max(s, 0)^γ``, symmetrically normalised
  ``S = D^-1/2 W D^-1/2``; an edge list, so a matrix-vector product is one ``bincount``.
* :func:`conjugate_gradient` — solves ``(I - α S) f = y`` (symmetric positive definite for
  α < 1) in at most ``iterations`` steps, stopping at ``|r| <= tolerance |y|``.
* :func:`diffusion_ranking` — the one entry serving and evaluation call: shortlist, then
  :func:`diffuse`, all of it for one query: ``y`` is the query's ``kq`` nearest shortlist nodes
  weighted ``max(s, 0)^γ``; the shortlist comes back ranked by ``f`` (ties: cosine, then id).

Everything is float64 inside but the candidate edges' dot products (float32: the one large
product); ids are the graph's record ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.rerank._graph import NeighbourGraph
from retrieval.rerank._neighbours import top_k, weights
from retrieval.rerank._settings import Diffusion

__all__ = ["Affinity", "affinity", "conjugate_gradient", "diffuse", "diffusion_ranking",
           "grow_shortlist"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Neighbours = Callable[[I64], NeighbourGraph]


def grow_shortlist(first: npt.ArrayLike, neighbours: Neighbours, *, k: int, hops: int,
                   cap: int) -> NeighbourGraph:
    """The shortlist of a query whose first hits are ``first`` (ids, best first; -1 ignored):
    those, then ``hops`` times the unseen neighbours among the first ``k`` of the last ones
    added (every node's best neighbour, then every node's second...), at most ``cap`` ids.
    Returns the shortlist's rows of the graph (``neighbours(ids)``), in the order reached."""
    start = np.asarray(first, dtype=np.int64).reshape(-1)
    ids = np.asarray(list(dict.fromkeys(start[start >= 0].tolist()))[:cap], dtype=np.int64)
    parts = [neighbours(ids)] if len(ids) else []
    seen = set(ids.tolist())
    for _ in range(hops):
        if not parts or len(seen) >= cap:
            break
        reach = parts[-1].I[:, :k].T.reshape(-1)  # column-major: best neighbours first
        new = [int(j) for j in dict.fromkeys(reach.tolist()) if j >= 0 and j not in seen]
        new = new[:cap - len(seen)]
        if not new:
            break
        seen.update(new)
        parts.append(neighbours(np.asarray(new, dtype=np.int64)))
    if not parts:
        return NeighbourGraph(ids, np.zeros((0, k), np.int64), np.zeros((0, k)))
    width = max(p.k for p in parts)
    return NeighbourGraph(np.concatenate([p.ids for p in parts]),
                          np.concatenate([_widen(p.I, width, -1) for p in parts]),
                          np.concatenate([_widen(p.D, width, -np.inf) for p in parts]))


def _widen(a: npt.NDArray[np.generic], width: int, fill: float) -> npt.NDArray[np.generic]:
    return a if a.shape[1] == width else np.pad(a, ((0, 0), (0, width - a.shape[1])),
                                                constant_values=fill)


@dataclass(frozen=True)
class Affinity:
    """A symmetric normalised affinity on ``n`` nodes as an edge list: ``S[rows, cols] = w``."""

    n: int
    rows: I64
    cols: I64
    w: F64

    def matvec(self, x: F64) -> F64:
        out: F64 = np.bincount(self.rows, weights=self.w * x[self.cols],
                               minlength=self.n).astype(np.float64, copy=False)
        return out

    def dense(self) -> F64:
        s = np.zeros((self.n, self.n))
        np.add.at(s, (self.rows, self.cols), self.w)
        return s


def affinity(shortlist: NeighbourGraph, xs: npt.ArrayLike, k: int, gamma: float,
             candidates: int) -> Affinity:
    """The mutual kNN affinity of the shortlist (its rows of the graph, vectors ``xs`` (n, d)
    in the same order): per row, of its first ``candidates`` graph neighbours those in the
    shortlist, the ``k`` nearest by ``x_i · x_j`` (the vectors searched: DBA-augmented ones
    choose other neighbours than the raw graph's); an edge where both ends chose each other,
    weight ``max(x_i · x_j, 0)^γ``, then ``D^-1/2 W D^-1/2``."""
    n = len(shortlist)
    cols = _positions(shortlist.ids, shortlist.I[:, :candidates])
    cols[np.arange(n)[:, None] == cols] = -1  # a node is not its own neighbour
    sims = _edge_sims(np.ascontiguousarray(xs, dtype=np.float32), cols)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # ties: the graph's order
    top = np.take_along_axis(cols, order, axis=1)
    top_s = np.take_along_axis(sims, order, axis=1)
    a, c = np.nonzero(top >= 0)
    b = top[a, c]
    mutual = np.isin(a * n + b, b * n + a)
    a, b, s = a[mutual].astype(np.int64), b[mutual].astype(np.int64), top_s[a, c][mutual]
    w = weights(s, gamma)
    degree = np.bincount(a, weights=w, minlength=n)
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    return Affinity(n, a, b, w * inv[a] * inv[b])


def _positions(ids: I64, wanted: I64) -> I64:
    """Positions in ``ids`` of each of ``wanted`` (any shape; -1 where absent): the distinct
    values are looked up sorted (a search of unsorted values is several times slower)."""
    values, inverse = np.unique(wanted, return_inverse=True)
    order = np.argsort(ids, kind="stable")
    found = np.clip(np.searchsorted(ids[order], values), 0, max(len(ids) - 1, 0))
    hit = ids[order][found] == values if len(ids) else np.zeros(len(values), dtype=bool)
    pos = np.where(hit, order[found] if len(ids) else -1, -1)
    out: I64 = pos[inverse.reshape(-1)].reshape(wanted.shape).astype(np.int64)
    return out


def _edge_sims(x: F32, cols: I64, chunk: int = 64) -> F64:
    """``x_i · x_cols[i, c]`` (float32 products) where ``cols`` >= 0, ``-inf`` elsewhere: only
    the candidate pairs, ``chunk`` rows of gathered neighbour vectors at a time (a full Gram
    matrix costs n² d); numpy's own loops, not BLAS, whose threads spin against the caller's on
    a busy machine."""
    out = np.full(cols.shape, -np.inf)
    safe = np.maximum(cols, 0)
    for start in range(0, len(x), chunk):
        part = slice(start, start + chunk)
        dots = np.einsum("ncd,nd->nc", x[safe[part]], x[part])
        out[part] = np.where(cols[part] >= 0, dots, -np.inf)
    return out


def conjugate_gradient(s: Affinity, y: npt.ArrayLike, alpha: float, iterations: int,
                       tolerance: float) -> F64:
    """``f`` solving ``(I - alpha S) f = y`` by conjugate gradient from ``f = 0``."""
    b = np.asarray(y, dtype=np.float64)
    f = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rs = float(r @ r)
    stop = tolerance * float(np.sqrt(b @ b))
    for _ in range(iterations):
        if np.sqrt(rs) <= stop or rs == 0.0:
            break
        ap = p - alpha * s.matvec(p)
        step = rs / float(p @ ap)
        f += step * p
        r -= step * ap
        rs_next = float(r @ r)
        p = r + (rs_next / rs) * p
        rs = rs_next
    return f


def diffuse(q: npt.ArrayLike, shortlist: NeighbourGraph, xs: npt.ArrayLike,
            params: Diffusion) -> tuple[I64, F64]:
    """One query ``q`` (d,) over its shortlist (graph rows, vectors ``xs`` in that order): the
    shortlist's ids ranked by diffusion, and their ``f`` (ties: cosine to ``q``, then id)."""
    x = np.ascontiguousarray(xs, dtype=np.float32)
    if not len(shortlist):
        return np.zeros(0, np.int64), np.zeros(0)
    sims = np.einsum("nd,d->n", x.astype(np.float64), np.asarray(q, dtype=np.float64))
    seed_i, seed_s = top_k(sims[None], np.arange(len(x), dtype=np.int64), params.kq)
    y = np.zeros(len(x))
    valid = seed_i[0] >= 0
    y[seed_i[0][valid]] = weights(seed_s[0][valid], params.gamma)
    s = affinity(shortlist, x, params.k, params.gamma, params.candidates)
    f = conjugate_gradient(s, y, params.alpha, params.iterations, params.tolerance)
    order = np.lexsort((shortlist.ids, -sims, -f))
    return shortlist.ids[order], f[order]


def diffusion_ranking(q: npt.ArrayLike, first: npt.ArrayLike, neighbours: Neighbours,
                      vectors: Callable[[I64], F32], params: Diffusion) -> tuple[I64, F64]:
    """The shortlist of ``q`` (its first hits ``first``, best first, grown through
    ``neighbours``) ranked by diffusion over the vectors searched (``vectors(ids)``), and ``f``."""
    shortlist = grow_shortlist(first, neighbours, k=params.candidates, hops=params.hops,
                               cap=params.shortlist)
    return diffuse(q, shortlist, vectors(shortlist.ids), params)
