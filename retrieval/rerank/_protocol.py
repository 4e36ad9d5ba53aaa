"""Scores of αQE and αQE + DBA under the strict protocol the evaluation reports.

Strict protocol (it reproduces the published numbers): DBA is computed over the database as it
would be indexed *without* the query — for a query that is itself a database image (leave-one-out)
over the other images only, so the query never leaks into a neighbour's augmented vector — the
query stays raw, αQE draws its neighbours from those augmented vectors, and the expanded query
ranks them. For a query outside the database this is exactly what searching an index built with
the same DBA and αQE does. Rather than recomputing DBA per query, the full-database DBA is computed
once and, per leave-one-out query ``j``, only the vectors that had ``j`` among their top-k are
recomputed (:meth:`DbaState.left_out`), which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.rerank._dba import DbaState
from retrieval.rerank._expansion import aqe
from retrieval.rerank._neighbours import top_k

__all__ = ["StrictDatabases", "query_vector", "reranked_scores", "strict_databases"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Database:
    """The database one query sees: ``base`` with the rows ``changed`` replaced by ``patch``."""

    base: F64
    changed: I64
    patch: F64

    def scores(self, v: F64) -> F64:
        s: F64 = self.base @ v
        if len(self.changed):
            s[self.changed] = self.patch @ v
        return s

    def rows(self, idx: I64) -> F64:
        out = self.base[idx].copy()
        where = {int(c): r for r, c in enumerate(self.changed)}
        for n, r in enumerate(idx.tolist()):
            if r in where:
                out[n] = self.patch[where[r]]
        return out


def reranked_scores(xq: npt.ArrayLike, xb: npt.ArrayLike, own: Sequence[int | None], *,
                    qe_k: int, qe_alpha: float = 3.0, dba_k: int = 0,
                    dba_alpha: float = 3.0) -> F32:
    """Scores (nq, nb) after αQE (``qe_k`` > 0) and DBA (``dba_k`` > 0), strict protocol.

    ``own[i]`` is the database index of query ``i`` when it is a database image (left out of
    its own neighbours and of the DBA), else None.
    """
    q = np.asarray(xq, dtype=np.float64)
    databases = strict_databases(xb, own, dba_k, dba_alpha)
    out = np.empty((len(q), len(databases.base)), dtype=np.float32)
    for i, j in enumerate(own):
        out[i] = _query_scores(q[i], databases.of(j), j, qe_k, qe_alpha)
    return out


@dataclass(frozen=True)
class StrictDatabases:
    """The database each query sees: DBA over all of ``xb`` once, patched per left-out row."""

    base: F64
    state: DbaState | None

    def of(self, j: int | None) -> _Database:
        """The database without row ``j`` in its DBA (``j`` None: the whole database)."""
        if self.state is None or j is None:
            return _Database(self.base, np.zeros(0, dtype=np.int64),
                             np.zeros((0, self.base.shape[1])))
        changed, patch = self.state.left_out(j)
        return _Database(self.base, changed, patch.astype(np.float64))


def strict_databases(xb: npt.ArrayLike, own: Sequence[int | None], dba_k: int,
                     dba_alpha: float) -> StrictDatabases:
    """DBA (``dba_k`` > 0) of ``xb`` as :class:`StrictDatabases` (``own`` is only checked)."""
    b = np.asarray(xb, dtype=np.float32)
    if any(j is not None and not 0 <= j < len(b) for j in own):
        raise ValueError("own holds a row outside the database")
    if not dba_k:
        return StrictDatabases(b.astype(np.float64), None)
    ids = np.arange(len(b), dtype=np.int64)
    state = DbaState(dba_k, dba_alpha)
    state.add(ids, b)
    return StrictDatabases(state.augmented(ids).astype(np.float64), state)


def _query_scores(q: F64, db: _Database, j: int | None, qe_k: int, qe_alpha: float) -> F64:
    return db.scores(query_vector(q, db, j, qe_k, qe_alpha)) if qe_k else db.scores(q)


def query_vector(q: F64, db: _Database, j: int | None, qe_k: int, qe_alpha: float) -> F64:
    """The query after αQE (``qe_k`` > 0) against ``db``, database row ``j`` left out."""
    if not qe_k:
        return q
    s_ex = db.scores(q)
    if j is not None:
        s_ex[j] = -np.inf
    top_i, top_s = top_k(s_ex[None], np.arange(len(s_ex), dtype=np.int64), qe_k)
    valid = top_i[0] >= 0
    expanded = aqe(q[None], db.rows(top_i[0][valid])[None], top_s[0][valid][None], qe_alpha)
    out: F64 = expanded[0].astype(np.float64)
    return out
