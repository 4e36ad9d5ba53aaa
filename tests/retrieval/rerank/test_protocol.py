"""Strict-protocol αQE / αQE + DBA scores against a per-query brute force (DBA recomputed over the
database without the query, loop by loop, no kernel code)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.rerank import reranked_scores
from tests.retrieval.rerank.references import brute_dba, expanded, ranked, unit


def brute(q: np.ndarray, xb: np.ndarray, j: int | None, qe_k: int, dba_k: int) -> np.ndarray:
    """Scores of the database without ``j`` (in its order) for query ``q``."""
    keep = [r for r in range(len(xb)) if r != j]
    db = brute_dba(xb[keep], dba_k, 3.0) if dba_k else xb[keep]
    s = db @ q
    if qe_k:
        nn = [n for _, n in ranked([(float(v), n) for n, v in enumerate(s)])[:qe_k]]
        s = db @ expanded(q, [(float(s[n]), db[n]) for n in nn], 3.0)
    return s


@pytest.mark.parametrize("qe_k, dba_k", [(2, 0), (2, 2), (3, 1), (0, 2), (5, 3)])
def test_strict_protocol_matches_brute_force(qe_k: int, dba_k: int) -> None:
    xb, extra = unit(40, 8, 0, power=2.0), unit(3, 8, 1, power=2.0)
    own = [0, 7, 39, None, None, None]
    xq = np.concatenate([xb[[0, 7, 39]], extra])
    got = reranked_scores(xq.astype(np.float32), xb.astype(np.float32), own, qe_k=qe_k,
                          dba_k=dba_k)
    for i, j in enumerate(own):
        keep = [r for r in range(40) if r != j]
        np.testing.assert_allclose(got[i][keep], brute(xq[i], xb, j, qe_k, dba_k), atol=1e-5)


def test_without_reranking_scores_are_inner_products() -> None:
    xb, xq = unit(10, 4, 2), unit(3, 4, 3)
    got = reranked_scores(xq, xb, [None, 4, None], qe_k=0)
    np.testing.assert_allclose(got, xq @ xb.T, atol=1e-6)
