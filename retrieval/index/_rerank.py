"""Re-ranking of L2-normalised descriptors: αQE on the query side, DBA on the database side (numpy).

* αQE, α-weighted query expansion (Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with
  no human annotation", TPAMI 2018): ``q' = l2n(q + Σ_{i ∈ top-k(q)} s_i^α · x_i)``, ``s_i`` the
  cosine of neighbour ``x_i`` to ``q``.
* DBA, database-side augmentation (Arandjelović & Zisserman, CVPR 2012; α-weighted as in
  Radenović et al.): every database vector becomes ``l2n(x_j + Σ_{i ∈ top-k(j), i ≠ j} s^α x_i)``.

Cosines are clipped at 0 before the power (α = 3 would turn a negative cosine into a negative
weight). Neighbours are ranked by cosine, ties by the lower id, so results do not depend on the
order images were added in. :class:`DbaState` keeps every vector's raw top-k neighbours so an add
or a remove recomputes only the vectors whose neighbourhood changed (exactly what a fresh build
gives). All similarities are computed in float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError

__all__ = ["MAX_RERANK_K", "DbaState", "Rerank", "aqe", "dba", "top_k"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MAX_RERANK_K = 50
_CHUNK = 2048


@dataclass(frozen=True)
class Rerank:
    """αQE (``qe_k`` neighbours, weights ``s^qe_alpha``) and DBA settings; k = 0 turns one off."""

    qe_k: int = 0
    qe_alpha: float = 3.0
    dba_k: int = 0
    dba_alpha: float = 3.0

    def __post_init__(self) -> None:
        for name in ("qe_k", "dba_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value <= MAX_RERANK_K:
                raise ConfigError(f"{name} must be an integer from 0 to {MAX_RERANK_K}, "
                                  f"got {value!r}")
        for name in ("qe_alpha", "dba_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value <= 100:
                raise ConfigError(f"{name} must be a number from 0 to 100, got {value!r}")


def _l2n(x: F64) -> F64:
    out: F64 = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return out


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


def _weights(sims: F64, alpha: float) -> F64:
    w: F64 = np.where(np.isfinite(sims), np.clip(sims, 0.0, None), 0.0) ** alpha
    return np.where(np.isfinite(sims), w, 0.0)


def aqe(q: npt.ArrayLike, neighbours: npt.ArrayLike, sims: npt.ArrayLike, alpha: float) -> F32:
    """Expanded queries: ``q`` (nq, d), their neighbours' vectors (nq, k, d) and cosines (nq, k)."""
    qq = np.asarray(q, dtype=np.float64)
    w = _weights(np.asarray(sims, dtype=np.float64), alpha)
    nb = np.asarray(neighbours, dtype=np.float64)
    out = qq + np.einsum("qk,qkd->qd", w, nb) if nb.size else qq
    return _l2n(out).astype(np.float32)


def dba(x: npt.ArrayLike, k: int, alpha: float) -> F32:
    """DBA of a whole database (n, d) at once."""
    state = DbaState(k, alpha)
    xs = np.asarray(x, dtype=np.float32)
    state.add(np.arange(len(xs), dtype=np.int64), xs)
    return state.augmented(np.arange(len(xs), dtype=np.int64))


class DbaState:
    """Raw vectors by id and each one's top-k raw neighbours; yields the augmented vectors."""

    def __init__(self, k: int, alpha: float) -> None:
        self.k, self.alpha = k, alpha
        self.ids: I64 = np.zeros(0, dtype=np.int64)
        self.x: F64 = np.zeros((0, 0), dtype=np.float64)
        self.nn_ids: I64 = np.zeros((0, k), dtype=np.int64)
        self.nn_sims: F64 = np.zeros((0, k), dtype=np.float64)
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _reindex(self) -> None:
        self._row = {int(i): r for r, i in enumerate(self.ids.tolist())}

    def _neighbours(self, rows: I64) -> tuple[I64, F64]:
        """Top-k over the whole state for the vectors at ``rows`` (themselves excluded)."""
        out_i, out_s = [], []
        for start in range(0, len(rows), _CHUNK):
            part = rows[start:start + _CHUNK]
            sims = self.x[part] @ self.x.T
            sims[np.arange(len(part)), part] = -np.inf
            ti, ts = top_k(sims, self.ids, self.k)
            out_i.append(ti)
            out_s.append(ts)
        if not out_i:
            return np.zeros((0, self.k), dtype=np.int64), np.zeros((0, self.k))
        return np.concatenate(out_i), np.concatenate(out_s)

    def add(self, ids: I64, x: npt.ArrayLike) -> set[int]:
        """Add vectors; returns the ids whose augmented vector is new or changed."""
        new = np.asarray(x, dtype=np.float64)
        n_old = len(self.ids)
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        self.x = np.concatenate([self.x.reshape(n_old, new.shape[1]), new])
        self._reindex()
        new_rows = np.arange(n_old, len(self.ids))
        new_i, new_s = self._neighbours(new_rows)
        affected = {int(i) for i in ids}
        if n_old:  # old vectors whose top-k the new ones enter
            cand = (self.x[:n_old] @ new.T)  # (n_old, n_new)
            merged_s = np.concatenate([self.nn_sims, cand], axis=1)
            merged_i = np.concatenate([self.nn_ids, np.broadcast_to(ids, cand.shape)], axis=1)
            merged_s = np.where(merged_i >= 0, merged_s, -np.inf)
            order = np.lexsort((np.where(merged_i >= 0, merged_i, np.iinfo(np.int64).max),
                                -merged_s), axis=1)[:, :self.k]
            top_i = np.take_along_axis(merged_i, order, axis=1)
            top_s = np.take_along_axis(merged_s, order, axis=1)
            top_i = np.where(np.isfinite(top_s), top_i, -1)
            changed = np.any(top_i != self.nn_ids, axis=1)
            affected.update(int(i) for i in self.ids[:n_old][changed])
            self.nn_ids, self.nn_sims = top_i, top_s
        self.nn_ids = np.concatenate([self.nn_ids, new_i])
        self.nn_sims = np.concatenate([self.nn_sims, new_s])
        return affected

    def remove(self, ids: Iterable[int]) -> set[int]:
        """Remove vectors by id (unknown ids ignored); returns the ids whose neighbours changed."""
        gone = np.asarray([self._row[int(i)] for i in ids if int(i) in self._row], dtype=np.int64)
        if not len(gone):
            return set()
        gone_ids = self.ids[gone]
        keep = np.ones(len(self.ids), dtype=bool)
        keep[gone] = False
        self.ids, self.x = self.ids[keep], self.x[keep]
        self.nn_ids, self.nn_sims = self.nn_ids[keep], self.nn_sims[keep]
        self._reindex()
        stale = np.nonzero(np.isin(self.nn_ids, gone_ids).any(axis=1))[0]
        self.nn_ids[stale], self.nn_sims[stale] = self._neighbours(stale)
        return {int(i) for i in self.ids[stale]}

    def augmented(self, ids: Iterable[int]) -> F32:
        """The DBA vectors of ``ids`` (all known), float32 (n, d)."""
        rows = np.asarray([self._row[int(i)] for i in ids], dtype=np.int64)
        w = _weights(self.nn_sims[rows], self.alpha)
        nb_rows = np.asarray([[self._row.get(int(j), 0) for j in r] for r in self.nn_ids[rows]],
                             dtype=np.int64).reshape(len(rows), self.k)
        out = self.x[rows] + np.einsum("nk,nkd->nd", w, self.x[nb_rows]) if self.k else \
            self.x[rows]
        return np.ascontiguousarray(_l2n(out), dtype=np.float32)
