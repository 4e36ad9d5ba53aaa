"""Rankings: score matrices to database indices best first, and where the positives fall in them.

A *ranking* is a 1-D array of database indices, best first. It may be a full permutation of the
database or truncated to the top k; ids < 0 (faiss pads missing results with -1) are dropped.

Everything measured by :mod:`retrieval.evaluation._metrics` starts from :func:`positive_ranks`: the
0-based positions of the positives in the ranking *after* the ignored ids (junk and excluded
images) have been removed from it, which is what Oxford's ``compute_ap.cpp`` does (it ``continue``s
over junk without advancing the rank) and what revisitop's ``compute_map`` does (it shifts each
positive's position down by the number of junk images ranked before it).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError

__all__ = ["as_ranking", "positive_ranks", "rank"]

IntArray = npt.NDArray[np.int64]


def rank(scores: npt.ArrayLike) -> IntArray:
    """Database indices of each query's results, best (highest score) first.

    ``scores`` is (nq, nb), higher is better (cosine / inner product). The sort is stable on the
    negated scores, so equal scores are ordered by the lower database id first; NaN scores go
    last. Returns an int64 array of shape (nq, nb).
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ConfigError(f"scores must be a (nq, nb) matrix, got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ConfigError(f"scores must be real numbers, got dtype {s.dtype}")
    return np.argsort(-s, axis=1, kind="stable").astype(np.int64, copy=False)


def as_ranking(ranking: npt.ArrayLike) -> IntArray:
    """One query's ranking as a 1-D int64 array, with faiss's -1 padding dropped."""
    r = np.asarray(ranking)
    if r.ndim != 1:
        raise ConfigError(f"a ranking must be 1-D, got shape {r.shape}")
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise ConfigError(f"a ranking holds integer database ids, got dtype {r.dtype}")
    r = r.astype(np.int64, copy=False)
    return r[r >= 0]


def _ids(values: Collection[int]) -> IntArray:
    return np.fromiter(values, dtype=np.int64, count=len(values))


def positive_ranks(
    ranking: npt.ArrayLike, positives: Collection[int], ignored: Collection[int] = ()
) -> IntArray:
    """Sorted 0-based positions of ``positives`` in ``ranking`` once ``ignored`` ids are removed.

    Positives missing from a (truncated) ranking simply do not appear in the result.
    """
    r = as_ranking(ranking)
    if ignored:
        r = r[~np.isin(r, _ids(ignored))]
    return np.flatnonzero(np.isin(r, _ids(positives))).astype(np.int64, copy=False)
