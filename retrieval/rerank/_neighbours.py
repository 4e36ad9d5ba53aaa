"""Neighbours and the one re-ranking formula that αQE and DBA share.

* :func:`top_k` ranks by cosine, ties by the lower id, so results do not depend on the order
  vectors were added in; excluded columns are ``-inf`` and missing slots come back as id -1.
* :func:`weights` turns neighbour cosines into weights ``max(s, 0)^α`` (clipped at 0 before the
  power: α = 3 would turn a negative cosine into a negative weight); missing neighbours weigh 0.
* :func:`expand` is ``l2n(x + Σ_i w_i · x_i)``: αQE applies it to a query and its neighbours,
  DBA to a database vector and its neighbours (itself excluded).

Similarities and sums are computed in float64.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from retrieval.rerank._normalize import l2n

__all__ = ["expand", "top_k", "weights"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def top_k(sims: F64, ids: I64, k: int) -> tuple[I64, F64]:
    """Per row of ``sims`` (nq, n) over columns labelled ``ids``: the k best (id, sim), best
    first, ties by the lower id; ``-inf`` marks excluded columns. Missing slots: id -1, -inf."""
    n = sims.shape[1]
    order = np.lexsort((np.broadcast_to(ids, sims.shape), -sims), axis=1)[:, :k]
    top_ids = ids[order] if n else np.zeros((sims.shape[0], 0), dtype=np.int64)
    top_sims = np.take_along_axis(sims, order, axis=1)
    pad = k - top_ids.shape[1]
    if pad > 0:
        top_ids = np.pad(top_ids, ((0, 0), (0, pad)), constant_values=-1)
        top_sims = np.pad(top_sims, ((0, 0), (0, pad)), constant_values=-np.inf)
    top_ids = np.where(np.isfinite(top_sims), top_ids, -1)
    return top_ids.astype(np.int64), top_sims


def weights(sims: npt.ArrayLike, alpha: float) -> F64:
    """Neighbour weights ``max(s, 0)^α``; a missing neighbour (non-finite ``s``) weighs 0."""
    s = np.asarray(sims, dtype=np.float64)
    finite = np.isfinite(s)
    w: F64 = np.where(finite, np.clip(np.where(finite, s, 0.0), 0.0, None) ** alpha, 0.0)
    return w


def expand(x: npt.ArrayLike, neighbours: npt.ArrayLike, sims: npt.ArrayLike,
           alpha: float) -> F32:
    """``l2n(x + Σ_i max(s_i, 0)^α x_i)`` per row: ``x`` (n, d), ``neighbours`` (n, k, d),
    ``sims`` (n, k) their cosines to ``x`` (``-inf``: no neighbour in that slot)."""
    xx = np.asarray(x, dtype=np.float64)
    nb = np.asarray(neighbours, dtype=np.float64)
    if not nb.size:
        return l2n(xx)
    return l2n(xx + np.einsum("nk,nkd->nd", weights(sims, alpha), nb))
