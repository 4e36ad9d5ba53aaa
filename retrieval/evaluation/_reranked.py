"""Scores of αQE and αQE + DBA under the strict protocol, and multi-scale combination.

Strict protocol (it reproduces the published numbers): DBA is computed over the database as it
would be indexed *without* the query — for a query that is itself a database image (leave-one-out)
over the other images only, so the query never leaks into a neighbour's augmented vector — the
query stays raw, αQE draws its neighbours from those augmented vectors, and the expanded query
ranks them. Rather than recomputing DBA per query, the full-database DBA is computed once and, per
leave-one-out query ``j``, only the vectors that had ``j`` among their top-k are recomputed (the
others' neighbourhoods do not change), which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retrieval.index._rerank import aqe, top_k

__all__ = ["combine_scales", "reranked_scores"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def combine_scales(per_scale: Sequence[F32]) -> F32:
    """(n, d) L2-normalised vectors of each scale -> l2n(Σ_s v_s) (one scale: unchanged)."""
    if len(per_scale) == 1:
        return per_scale[0]
    total = np.sum([np.asarray(v, dtype=np.float64) for v in per_scale], axis=0)
    norms = np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)
    out: F32 = (total / norms).astype(np.float32)
    return out


def _augment(xb: F64, nn: npt.NDArray[np.int64], sims: F64, alpha: float) -> F64:
    w = np.where(nn >= 0, np.clip(sims, 0, None), 0.0) ** alpha
    w = np.where(nn >= 0, w, 0.0)
    out = xb + np.einsum("nk,nkd->nd", w, xb[np.maximum(nn, 0)])
    normed: F64 = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return normed


def reranked_scores(xq: F32, xb: F32, own: Sequence[int | None], *, qe_k: int,
                    qe_alpha: float = 3.0, dba_k: int = 0, dba_alpha: float = 3.0) -> F32:
    """Scores (nq, nb) after αQE (``qe_k`` > 0) and DBA (``dba_k`` > 0), strict protocol.

    ``own[i]`` is the database index of query ``i`` when it is a database image (left out of
    its own neighbours and of the DBA), else None.
    """
    b = np.asarray(xb, dtype=np.float64)
    q = np.asarray(xq, dtype=np.float64)
    ids = np.arange(len(b), dtype=np.int64)
    gram = b @ b.T
    np.fill_diagonal(gram, -np.inf)
    nn, nn_s = top_k(gram, ids, dba_k) if dba_k else (None, None)
    base = _augment(b, nn, nn_s, dba_alpha) if nn is not None and nn_s is not None else b
    out = np.empty((len(q), len(b)), dtype=np.float32)
    for i, j in enumerate(own):
        changed, patch = _without(b, gram, nn, j, dba_k, dba_alpha)
        out[i] = _query_scores(q[i], base, changed, patch, j, qe_k, qe_alpha)
    return out


def _without(b: F64, gram: F64, nn: npt.NDArray[np.int64] | None, j: int | None, k: int,
             alpha: float) -> tuple[npt.NDArray[np.int64], F64]:
    """Rows whose DBA changes when database image ``j`` is left out, and their new vectors."""
    none = np.zeros(0, dtype=np.int64), np.zeros((0, b.shape[1]))
    if j is None or nn is None:
        return none
    changed = np.nonzero((nn == j).any(axis=1))[0]
    if not len(changed):
        return none
    g = gram[changed].copy()
    g[:, j] = -np.inf
    cn, cs = top_k(g, np.arange(len(b), dtype=np.int64), k)
    w = np.where(cn >= 0, np.clip(cs, 0, None), 0.0) ** alpha
    part = b[changed] + np.einsum("nk,nkd->nd", np.where(cn >= 0, w, 0.0), b[np.maximum(cn, 0)])
    return changed, part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)


def _query_scores(q: F64, base: F64, changed: npt.NDArray[np.int64], patch: F64, j: int | None,
                  qe_k: int, qe_alpha: float) -> F64:
    def scores(v: F64) -> F64:
        s: F64 = base @ v
        if len(changed):
            s[changed] = patch @ v
        return s

    def rows(idx: npt.NDArray[np.int64]) -> F64:
        out = base[idx].copy()
        where = {int(c): r for r, c in enumerate(changed)}
        for n, r in enumerate(idx.tolist()):
            if r in where:
                out[n] = patch[where[r]]
        return out

    s = scores(q)
    if not qe_k:
        return s
    s_ex = s.copy()
    if j is not None:
        s_ex[j] = -np.inf
    top_i, top_s = top_k(s_ex[None], np.arange(len(base), dtype=np.int64), qe_k)
    valid = top_i[0] >= 0
    expanded = aqe(q[None], rows(top_i[0][valid])[None], top_s[0][valid][None], qe_alpha)
    return scores(expanded[0].astype(np.float64))
