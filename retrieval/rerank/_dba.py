"""DBA, database-side augmentation (Arandjelović & Zisserman, CVPR 2012; α-weighted as in
Radenović et al.): every database vector becomes ``l2n(x_j + Σ_{i ∈ top-k(j), i ≠ j} s^α x_i)``
(:func:`~retrieval.rerank._neighbours.expand`, neighbours by :func:`~._neighbours.top_k`).

:class:`DbaState` keeps every vector's raw top-k neighbours so an add or a remove recomputes only
the vectors whose neighbourhood changed (exactly what a fresh build gives), and
:meth:`DbaState.left_out` gives the vectors that change when one is left out without changing the
state (the strict evaluation protocol). All similarities are computed in float64.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from retrieval.rerank._neighbours import expand, top_k

__all__ = ["DbaState", "dba"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_CHUNK = 2048


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

    def _neighbours(self, rows: I64, without: int | None = None) -> tuple[I64, F64]:
        """Top-k over the whole state for the vectors at ``rows`` (themselves excluded, and the
        vector at row ``without`` too when given)."""
        out_i, out_s = [], []
        for start in range(0, len(rows), _CHUNK):
            part = rows[start:start + _CHUNK]
            sims = self.x[part] @ self.x.T
            sims[np.arange(len(part)), part] = -np.inf
            if without is not None:
                sims[:, without] = -np.inf
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
        new_i, new_s = self._neighbours(np.arange(n_old, len(self.ids)))
        affected = {int(i) for i in ids}
        if n_old:  # old vectors whose top-k the new ones enter
            affected.update(self._merge(n_old, np.asarray(ids, dtype=np.int64), new))
        self.nn_ids = np.concatenate([self.nn_ids, new_i])
        self.nn_sims = np.concatenate([self.nn_sims, new_s])
        return affected

    def _merge(self, n_old: int, ids: I64, new: F64) -> set[int]:
        """Merge the new vectors into the old ones' top-k; the old ids whose top-k changed."""
        cand = self.x[:n_old] @ new.T  # (n_old, n_new)
        merged_s = np.concatenate([self.nn_sims, cand], axis=1)
        merged_i = np.concatenate([self.nn_ids, np.broadcast_to(ids, cand.shape)], axis=1)
        merged_s = np.where(merged_i >= 0, merged_s, -np.inf)
        order = np.lexsort((np.where(merged_i >= 0, merged_i, np.iinfo(np.int64).max),
                            -merged_s), axis=1)[:, :self.k]
        top_i = np.take_along_axis(merged_i, order, axis=1)
        top_s = np.take_along_axis(merged_s, order, axis=1)
        top_i = np.where(np.isfinite(top_s), top_i, -1)
        changed = np.any(top_i != self.nn_ids, axis=1)
        self.nn_ids, self.nn_sims = top_i, top_s
        return {int(i) for i in self.ids[:n_old][changed]}

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
        return self._expand(rows, self.nn_ids[rows], self.nn_sims[rows])

    def left_out(self, image_id: int) -> tuple[I64, F32]:
        """The ids whose DBA vector changes when ``image_id`` is left out of the database, and
        those vectors then — what a state without it would give; this state is unchanged."""
        if image_id not in self._row or not self.k:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.x.shape[1]), dtype=np.float32)
        stale = np.nonzero((self.nn_ids == image_id).any(axis=1))[0]
        nn_i, nn_s = self._neighbours(stale, without=self._row[image_id])
        return self.ids[stale], self._expand(stale, nn_i, nn_s)

    def _expand(self, rows: I64, nn_ids: I64, nn_sims: F64) -> F32:
        nb_rows = np.asarray([[self._row.get(int(j), 0) for j in r] for r in nn_ids],
                             dtype=np.int64).reshape(len(rows), self.k)
        return np.ascontiguousarray(expand(self.x[rows], self.x[nb_rows], nn_sims, self.alpha))
