"""Exact top-k neighbours over blocks of float32 vectors, found fast and ranked in float64.

:func:`exact_top` gives, for each query row, what :func:`retrieval.rerank.knn_graph` gives: the
``k`` best labels by cosine computed in float64, ties by the lower label, the query's own label
and ``excluded`` labels left out. It does not compute N² float64 products: FAISS's brute force
(``faiss.knn``, float32, multi-threaded, no N x N matrix kept) proposes ``c`` candidates per block,
the candidates are re-scored in float64 and ranked, and a row is accepted only when no vector
left out can beat its k-th neighbour: every float32 inner product is within
``eps = d · 2^-23 · |q| · max|x|`` of the float64 one (twice the worst-case rounding bound of a
d-term sum), so a vector scoring at most the best rejected float32 score ``b`` cannot exceed
``b + eps``. Rows that fail (near-ties at the cut) are retried with four times the candidates,
until a block is fetched whole. A ``prior`` (m, k) list (exact cosines already known, e.g. a
row's current neighbours) joins the ranking, so merging new vectors into a row costs only them.

A block may instead carry an approximate ``search`` (the index's own ANN search, labels of the
best ``c``): its candidates are re-scored exactly but nothing is proved about those missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import faiss
import numpy as np
import numpy.typing as npt

__all__ = ["Block", "exact_top"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_QUERY_CHUNK = 512  # query rows ranked together (bounds the (m, c, d) float64 gather)
_UNIT_ROUNDING = 2.0 ** -23


@dataclass(frozen=True)
class Block:
    """Vectors ``x`` (n, d) float32 labelled ``labels``; ``max_norm`` bounds their norms.

    ``search(xq, c)`` (optional) returns (nq, c) labels found approximately (-1: none), and
    ``vectors(labels)`` their float32 vectors; without it the block is searched exactly, by
    FAISS or, when the caller computed them already, from ``scores`` (nq, n) float32."""

    x: F32
    labels: I64
    max_norm: float = 1.0
    search: Callable[[F32, int], I64] | None = None
    vectors: Callable[[I64], F32] | None = None
    scores: F32 | None = None

    def __len__(self) -> int:
        return len(self.labels)


def exact_top(xq: F32, own: I64, blocks: Sequence[Block], k: int, excluded: I64,
              prior: tuple[I64, F64] | None = None) -> tuple[I64, F64]:
    """The ``k`` best (labels, float64 cosines) of each query among ``blocks`` (module doc)."""
    m = len(xq)
    out_i = np.full((m, k), -1, dtype=np.int64)
    out_d = np.full((m, k), -np.inf)
    if m > _QUERY_CHUNK:
        blocks = [replace(b, scores=None) for b in blocks]
    for start in range(0, m, _QUERY_CHUNK):
        part = slice(start, start + _QUERY_CHUNK)
        pr = None if prior is None else (prior[0][part], prior[1][part])
        out_i[part], out_d[part] = _chunk(xq[part], own[part], blocks, k, excluded, pr)
    return out_i, out_d


def _chunk(xq: F32, own: I64, blocks: Sequence[Block], k: int, excluded: I64,
           prior: tuple[I64, F64] | None) -> tuple[I64, F64]:
    out_i = np.full((len(xq), k), -1, dtype=np.int64)
    out_d = np.full((len(xq), k), -np.inf)
    todo = np.arange(len(xq))
    c = max(2 * k, k + 8)
    q_norm = np.linalg.norm(xq.astype(np.float64), axis=1)
    while len(todo):
        pr = None if prior is None else (prior[0][todo], prior[1][todo])
        ti, td, ok = _attempt(xq[todo], own[todo], q_norm[todo], blocks, k, c, excluded, pr)
        out_i[todo[ok]], out_d[todo[ok]] = ti[ok], td[ok]
        todo = todo[~ok]
        c *= 4
        blocks = [replace(b, scores=None) for b in blocks]  # precomputed for every row only
    return out_i, out_d


def _attempt(xq: F32, own: I64, q_norm: F64, blocks: Sequence[Block], k: int, c: int,
             excluded: I64, prior: tuple[I64, F64] | None) -> tuple[I64, F64, B]:
    """One try with ``c`` candidates per block: the ranked rows and which of them are proved."""
    labels, sims = ([prior[0]], [prior[1]]) if prior is not None else ([], [])
    bound = np.full(len(xq), -np.inf)
    eps = np.zeros(len(xq))
    for block in blocks:
        if not len(block) or not len(xq):
            continue
        cand, vec, b = _candidates(xq, own, block, c, excluded)
        labels.append(cand)
        s = np.einsum("md,mcd->mc", xq, vec, dtype=np.float64, casting="safe")
        sims.append(np.where(cand >= 0, s, -np.inf))
        bound = np.maximum(bound, b)
        eps = np.maximum(eps, xq.shape[1] * _UNIT_ROUNDING * q_norm * block.max_norm)
    if not labels:
        return (np.full((len(xq), k), -1, np.int64), np.full((len(xq), k), -np.inf),
                np.ones(len(xq), dtype=bool))
    all_l, all_s = np.concatenate(labels, axis=1), np.concatenate(sims, axis=1)
    keyed = np.where(all_l >= 0, all_l, np.iinfo(np.int64).max)
    order = np.lexsort((keyed, -all_s), axis=1)[:, :k]
    top_l = np.take_along_axis(all_l, order, axis=1)
    top_s = np.take_along_axis(all_s, order, axis=1)
    if top_l.shape[1] < k:
        pad = k - top_l.shape[1]
        top_l = np.pad(top_l, ((0, 0), (0, pad)), constant_values=-1)
        top_s = np.pad(top_s, ((0, 0), (0, pad)), constant_values=-np.inf)
    top_l = np.where(np.isfinite(top_s), top_l, -1)
    ok = np.isneginf(bound) | (top_s[:, -1] > bound + eps)
    return top_l, top_s, ok


def _candidates(xq: F32, own: I64, block: Block, c: int,
                excluded: I64) -> tuple[I64, F32, F64]:
    """Per query: up to ``c`` candidate labels of ``block`` (-1 padded), their vectors, and the
    best float32 score of a vector not among them (-inf: none, or not provable)."""
    if block.search is not None and block.vectors is not None:
        found = block.search(xq, 2 * c)  # approximate: a wider net, all ranked exactly
        found = np.where(np.isin(found, excluded) | (found == own[:, None]), -1, found)
        vec = block.vectors(np.where(found >= 0, found, block.labels[0]).reshape(-1))
        return found, vec.reshape(*found.shape, -1), np.full(len(xq), -np.inf)
    n = len(block)
    fetch = min(n, c + 1 + len(excluded) + 1)
    if block.scores is not None and len(block.scores) == len(xq):
        scores, pos = _best(block.scores, fetch)
    else:
        scores, pos = faiss.knn(np.ascontiguousarray(xq), block.x, fetch,
                                metric=faiss.METRIC_INNER_PRODUCT)
    lab = np.where(pos >= 0, block.labels[np.maximum(pos, 0)], -1)
    bad = (pos < 0) | np.isin(lab, excluded) | (lab == own[:, None])
    rank = np.cumsum(~bad, axis=1)
    keep = ~bad & (rank <= c)
    # candidates first (in score order), the rest after: a stable sort on "not kept"
    order = np.argsort(~keep, axis=1, kind="stable")[:, :min(c, fetch)]
    cand = np.where(np.take_along_axis(keep, order, axis=1),
                    np.take_along_axis(lab, order, axis=1), -1)
    cpos = np.take_along_axis(pos, order, axis=1)
    vec = block.x[np.maximum(cpos, 0)]
    rejected = ~bad & (rank == c + 1)
    bound = np.where(rejected.any(axis=1),
                     np.max(np.where(rejected, scores, -np.inf), axis=1), -np.inf)
    if fetch < n:  # rows whose fetched list ran out: the unfetched score at most its last
        short = ~rejected.any(axis=1)
        bound = np.where(short, scores[:, -1].astype(np.float64), bound)
    return cand, vec, bound.astype(np.float64)


def _best(scores: F32, fetch: int) -> tuple[F32, I64]:
    """The ``fetch`` best of each row of ``scores``, best first (what ``faiss.knn`` returns)."""
    if fetch < scores.shape[1]:
        part = np.argpartition(-scores, fetch - 1, axis=1)[:, :fetch]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    got = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-got, axis=1, kind="stable")
    return np.take_along_axis(got, order, axis=1), np.take_along_axis(part, order, axis=1)
