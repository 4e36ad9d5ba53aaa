"""αQE, α-weighted query expansion (Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with
no human annotation", TPAMI 2018): ``q' = l2n(q + Σ_{i ∈ top-k(q)} max(s_i, 0)^α · x_i)``, ``s_i``
the cosine of neighbour ``x_i`` to ``q`` (:func:`~retrieval.rerank._neighbours.expand`)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from retrieval.rerank._neighbours import expand

__all__ = ["aqe"]

F32 = npt.NDArray[np.float32]


def aqe(q: npt.ArrayLike, neighbours: npt.ArrayLike, sims: npt.ArrayLike, alpha: float) -> F32:
    """Expanded queries: ``q`` (nq, d), their neighbours' vectors (nq, k, d) and cosines (nq, k)
    (``-inf`` where a query has fewer neighbours)."""
    return expand(q, neighbours, sims, alpha)
