"""Retrieval metrics: average precision (two variants), precision/recall@k, UKBench's N-S score.

Ground truth
    One :class:`QueryTruth` per query: ``positives``, ``junk`` and ``exclude`` are sets of
    database indices. Junk and excluded ids are both *removed from the ranking* before anything is
    measured; they differ only in meaning: junk is the benchmark's "don't care" list (Oxford/Paris
    ``*_junk.txt``, the revisited setups' junk), ``exclude`` is the query image itself where the
    protocol takes it out of its own results (Holidays, leave-one-out folders).

AP variants (``method=``)
    ``"trapezoidal"`` (default) — Oxford Buildings' ``compute_ap.cpp`` (Philbin et al., CVPR
    2007): the area under the precision-recall curve by trapezoids, with precision 1 at recall 0.
    For the positive found j-th (0-based) at position r of the junk-free ranking it adds
    ``(1/n_pos) * (p_before + p_at) / 2`` with ``p_before = j/r`` (1 when r = 0) and
    ``p_at = (j+1)/(r+1)``. This is also, term for term, ``compute_ap`` of revisitop and
    cnnimageretrieval-pytorch (Radenović et al., CVPR 2018 — the ROxford/RParis E/M/H numbers)
    and of Jégou's ``holidays_map.py``, so it reproduces every published mAP on these benchmarks.
    ``"non_interpolated"`` — the textbook (TREC, scikit-learn) AP: the mean over all positives of
    the precision at each positive's rank, ``(1/n_pos) * sum_j (j+1)/(r_j+1)``. It is never smaller
    than the trapezoidal value (``j/r <= (j+1)/(r+1)``). Positives a truncated ranking misses
    count as precision 0 in both.

mP@k (``kappas``) follows revisitop exactly: with 1-based positive positions ``p``,
``kq = min(max(p), k)`` and ``P = #{p <= kq} / kq``, so a query whose positives all rank before k
scores 1 (:func:`revisited_precision_at_k`). :func:`precision_at_k` is the plain ``hits / k``.

Queries with no positives are skipped (as revisitop does): a warning names them and
:class:`EvaluationResult` counts them; per-query values are NaN for them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError, DatasetError, UnknownNameError
from retrieval.evaluation._ranking import IntArray, as_ranking, positive_ranks, rank

__all__ = [
    "APMethod",
    "EvaluationResult",
    "QueryTruth",
    "average_precision",
    "evaluate",
    "mean_average_precision",
    "ns_score",
    "precision_at_k",
    "recall_at_k",
    "revisited_precision_at_k",
]

log = logging.getLogger(__name__)

APMethod = Literal["trapezoidal", "non_interpolated"]
_METHODS: tuple[str, ...] = get_args(APMethod)
NS_TOP = 4  # UKBench: four relevant images per query, counted in the top four


@dataclass(frozen=True)
class QueryTruth:
    """Ground truth of one query, as database indices. Positives must not be junk/excluded."""

    positives: frozenset[int]
    junk: frozenset[int] = frozenset()
    exclude: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        clash = self.positives & self.ignored
        if clash:
            raise DatasetError(f"database ids {sorted(clash)[:10]} are both positive and ignored")

    @classmethod
    def of(
        cls, positives: Iterable[int], junk: Iterable[int] = (), exclude: Iterable[int] = ()
    ) -> QueryTruth:
        """Build from any iterables of ints (lists, numpy arrays)."""
        return cls(
            frozenset(int(i) for i in positives),
            frozenset(int(i) for i in junk),
            frozenset(int(i) for i in exclude),
        )

    @property
    def ignored(self) -> frozenset[int]:
        """Ids removed from the ranking before measuring: junk and excluded."""
        return self.junk | self.exclude

    def positive_ranks(self, ranking: npt.ArrayLike) -> IntArray:
        """0-based positions of the positives in ``ranking`` with ignored ids removed."""
        return positive_ranks(ranking, self.positives, self.ignored)


@dataclass(frozen=True)
class EvaluationResult:
    """Means over the ``n_queries - n_skipped`` queries that have positives."""

    method: APMethod
    mean_ap: float
    mean_precision_at: Mapping[int, float]  # revisitop's mP@k, k -> value
    ns_score: float | None  # UKBench N-S (0..4) when asked for
    n_queries: int
    n_skipped: int
    average_precisions: tuple[float, ...] = field(repr=False)  # per query, NaN when skipped
    skipped: tuple[str, ...] = ()  # names of the skipped queries


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise UnknownNameError("AP method", method, _METHODS)


def _ap_from_ranks(ranks: IntArray, n_positives: int, method: str) -> float:
    if ranks.size == 0:
        return 0.0
    j = np.arange(ranks.size, dtype=np.float64)
    r = ranks.astype(np.float64)
    p_at = (j + 1.0) / (r + 1.0)
    if method == "non_interpolated":
        return float(p_at.sum() / n_positives)
    p_before = np.divide(j, r, out=np.ones_like(r), where=r > 0)
    return float(((p_before + p_at) / 2.0).sum() / n_positives)


def average_precision(
    ranking: npt.ArrayLike, truth: QueryTruth, *, method: APMethod = "trapezoidal"
) -> float:
    """AP of one ranked list (see the module docstring for the variants); NaN with no positives."""
    _check_method(method)
    if not truth.positives:
        return math.nan
    return _ap_from_ranks(truth.positive_ranks(ranking), len(truth.positives), method)


def _check_k(k: int) -> None:
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")


def precision_at_k(ranking: npt.ArrayLike, truth: QueryTruth, k: int) -> float:
    """Positives among the first k (after removing ignored ids), divided by k."""
    _check_k(k)
    return int(np.count_nonzero(truth.positive_ranks(ranking) < k)) / k


def recall_at_k(ranking: npt.ArrayLike, truth: QueryTruth, k: int) -> float:
    """Positives among the first k (after removing ignored ids) over all positives; NaN if none."""
    _check_k(k)
    if not truth.positives:
        return math.nan
    return int(np.count_nonzero(truth.positive_ranks(ranking) < k)) / len(truth.positives)


def _revisited_pk(ranks: IntArray, k: int) -> float:
    if ranks.size == 0:  # revisitop would fail on max([]); nothing relevant was retrieved
        return 0.0
    kq = min(int(ranks.max()) + 1, k)
    return int(np.count_nonzero(ranks + 1 <= kq)) / kq


def revisited_precision_at_k(ranking: npt.ArrayLike, truth: QueryTruth, k: int) -> float:
    """revisitop's P@k: hits in the first ``min(k, rank of the last positive)`` over that count."""
    _check_k(k)
    if not truth.positives:
        return math.nan
    return _revisited_pk(truth.positive_ranks(ranking), k)


def _rows(
    scores: npt.ArrayLike | None, rankings: npt.ArrayLike | Sequence[npt.ArrayLike] | None, n: int
) -> Iterator[IntArray]:
    """One ranking per query, ranking score rows one at a time to keep memory at O(nb)."""
    if (scores is None) == (rankings is None):
        raise ConfigError("give exactly one of scores or rankings")
    if scores is not None:
        s = np.asarray(scores)
        if s.ndim != 2 or s.shape[0] != n:
            raise ConfigError(f"scores must be ({n}, nb) for {n} queries, got shape {s.shape}")
        return (rank(s[i : i + 1])[0] for i in range(n))
    assert rankings is not None
    rows = rankings if isinstance(rankings, Sequence) else list(np.asarray(rankings))
    if len(rows) != n:
        raise ConfigError(f"{len(rows)} rankings for {n} queries")
    return (as_ranking(row) for row in rows)


def _names(names: Sequence[str] | None, n: int) -> Sequence[str]:
    if names is None:
        return [f"query {i}" for i in range(n)]
    if len(names) != n:
        raise ConfigError(f"{len(names)} query names for {n} queries")
    return names


def _warn_skipped(skipped: Sequence[str], n: int) -> None:
    if skipped:
        more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        shown = ", ".join(skipped[:20]) + more
        log.warning("skipped %d of %d queries with no positives: %s", len(skipped), n, shown)


def _per_query(
    rows: Iterable[IntArray],
    truths: Sequence[QueryTruth],
    names: Sequence[str],
    method: str,
    kappas: Sequence[int],
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """Per query: AP, hits in the top 4, then mP@k per kappa; a NaN row for a skipped query."""
    table = np.full((len(truths), 2 + len(kappas)), math.nan)
    skipped: list[str] = []
    for i, (name, row, truth) in enumerate(zip(names, rows, truths, strict=True)):
        if not truth.positives:
            skipped.append(name)
            continue
        ranks = truth.positive_ranks(row)
        table[i, 0] = _ap_from_ranks(ranks, len(truth.positives), method)
        table[i, 1] = np.count_nonzero(ranks < NS_TOP)
        table[i, 2:] = [_revisited_pk(ranks, k) for k in kappas]
    return table, skipped


def evaluate(
    truths: Sequence[QueryTruth],
    *,
    scores: npt.ArrayLike | None = None,
    rankings: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None,
    method: APMethod = "trapezoidal",
    kappas: Sequence[int] = (1, 5, 10),
    ns: bool = False,
    names: Sequence[str] | None = None,
) -> EvaluationResult:
    """mAP, mP@k (revisitop's) and optionally N-S of a search, from scores (nq, nb) or rankings.

    ``rankings`` is (nq, k) or a sequence of 1-D rankings (possibly truncated; -1 ids dropped).
    ``names`` name the queries in the warning about skipped ones.
    """
    _check_method(method)
    for k in kappas:
        _check_k(k)
    rows = _rows(scores, rankings, len(truths))
    table, skipped = _per_query(rows, truths, _names(names, len(truths)), method, kappas)
    _warn_skipped(skipped, len(truths))
    scored = table[~np.isnan(table[:, 0])]
    means = scored.mean(axis=0) if len(scored) else np.full(table.shape[1], math.nan)
    return EvaluationResult(
        method=method,
        mean_ap=float(means[0]),
        mean_precision_at={k: float(v) for k, v in zip(kappas, means[2:], strict=True)},
        ns_score=float(means[1]) if ns else None,
        n_queries=len(truths),
        n_skipped=len(skipped),
        average_precisions=tuple(float(a) for a in table[:, 0]),
        skipped=tuple(skipped),
    )


def mean_average_precision(
    truths: Sequence[QueryTruth],
    *,
    scores: npt.ArrayLike | None = None,
    rankings: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None,
    method: APMethod = "trapezoidal",
    names: Sequence[str] | None = None,
) -> float:
    """Mean AP over the queries that have positives (others skipped with a warning)."""
    result = evaluate(
        truths, scores=scores, rankings=rankings, method=method, kappas=(), names=names
    )
    return result.mean_ap


def ns_score(
    truths: Sequence[QueryTruth],
    *,
    scores: npt.ArrayLike | None = None,
    rankings: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None,
) -> float:
    """UKBench N-S score: mean number of positives among the top 4 (0..4, 4 is perfect)."""
    result = evaluate(truths, scores=scores, rankings=rankings, kappas=(), ns=True)
    assert result.ns_score is not None
    return result.ns_score
