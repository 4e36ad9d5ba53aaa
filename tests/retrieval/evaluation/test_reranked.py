"""Strict-protocol αQE / αQE + DBA scores against a per-query brute force."""

from __future__ import annotations

import numpy as np

from retrieval.evaluation._reranked import combine_scales, reranked_scores
from retrieval.index._rerank import dba


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.abs(np.random.default_rng(seed).normal(size=(n, d))) ** 2
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(q: np.ndarray, xb: np.ndarray, j: int | None, qe_k: int, dba_k: int) -> np.ndarray:
    keep = [r for r in range(len(xb)) if r != j]
    db = xb.astype(np.float64).copy()
    if dba_k:
        db[keep] = dba(xb[keep], dba_k, 3.0)
    s = db[keep] @ q
    if qe_k:
        nn = np.argsort(-s, kind="stable")[:qe_k]
        v = q + sum(s[n] ** 3 * db[keep][n] for n in nn)
        v = v / np.linalg.norm(v)
        s = db[keep] @ v
    return s


def test_strict_protocol_matches_brute_force() -> None:
    xb, extra = unit(40, 8, 0), unit(3, 8, 1)
    own = [0, 7, 39, None, None, None]
    xq = np.concatenate([xb[[0, 7, 39]], extra])
    for qe_k, dba_k in ((2, 0), (2, 2), (3, 1), (0, 2)):
        got = reranked_scores(xq, xb, own, qe_k=qe_k, dba_k=dba_k)
        for i, j in enumerate(own):
            keep = [r for r in range(40) if r != j]
            np.testing.assert_allclose(got[i][keep], brute(xq[i], xb, j, qe_k, dba_k), atol=1e-5)


def test_combine_scales() -> None:
    a, b = unit(4, 5, 2), unit(4, 5, 3)
    s = a.astype(np.float64) + b
    np.testing.assert_allclose(combine_scales([a, b]), s / np.linalg.norm(s, axis=1)[:, None],
                               atol=1e-6)
    assert combine_scales([a]) is a
