"""αQE and DBA against brute-force loops; incremental DBA equals a fresh one."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import ConfigError
from retrieval.index._rerank import DbaState, Rerank, aqe, dba


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.abs(np.random.default_rng(seed).normal(size=(n, d)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_dba(x: np.ndarray, k: int, alpha: float) -> np.ndarray:
    out = []
    for j in range(len(x)):
        sims = [(float(x[j] @ x[i]), i) for i in range(len(x)) if i != j]
        sims.sort(key=lambda t: (-t[0], t[1]))
        v = x[j].copy()
        for s, i in sims[:k]:
            v += max(s, 0.0) ** alpha * x[i]
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def test_aqe_matches_brute_force() -> None:
    db, q = unit(30, 8, 0), unit(4, 8, 1)
    sims = q @ db.T
    nn = np.argsort(-sims, axis=1)[:, :3]
    got = aqe(q, db[nn], np.take_along_axis(sims, nn, axis=1), 3.0)
    for r in range(4):
        v = q[r] + sum(sims[r, i] ** 3 * db[i] for i in nn[r])
        assert np.allclose(got[r], v / np.linalg.norm(v), atol=1e-6)


def test_aqe_hand_example() -> None:
    # q = e0, one neighbour (1, 1)/√2 at cosine 1/√2, α = 2: q + 0.5·(1, 1)/√2, normalised
    q = np.array([[1.0, 0.0]])
    nb = np.array([[[2**-0.5, 2**-0.5]]])
    v = np.array([1 + 0.5 * 2**-0.5, 0.5 * 2**-0.5])
    assert np.allclose(aqe(q, nb, [[2**-0.5]], 2.0)[0], v / np.linalg.norm(v), atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_dba_matches_brute_force(k: int) -> None:
    x = unit(25, 6, 2)
    assert np.allclose(dba(x, k, 3.0), brute_dba(x, k, 3.0), atol=1e-6)


def test_dba_with_fewer_vectors_than_k() -> None:
    x = unit(2, 4, 3)
    assert np.allclose(dba(x, 5, 3.0), brute_dba(x, 5, 3.0), atol=1e-6)
    assert np.allclose(dba(x[:1], 2, 3.0), x[:1], atol=1e-6)


def test_incremental_dba_equals_fresh() -> None:
    x = unit(60, 8, 4)
    ids = np.arange(100, 160, dtype=np.int64)
    state = DbaState(2, 3.0)
    state.add(ids[:20], x[:20])
    for lo in range(20, 60, 10):
        affected = state.add(ids[lo:lo + 10], x[lo:lo + 10])
        assert set(ids[lo:lo + 10].tolist()) <= affected
    gone = [103, 117, 150, 151, 159, 999]
    state.remove(gone)
    keep = ~np.isin(ids, gone)
    fresh = DbaState(2, 3.0)
    fresh.add(ids[keep][::-1].copy(), x[keep][::-1].copy())  # another order, same result
    assert np.allclose(state.augmented(ids[keep]), fresh.augmented(ids[keep]), atol=1e-6)
    assert np.allclose(state.augmented(ids[keep]), brute_dba(x[keep], 2, 3.0), atol=1e-6)


def test_remove_reports_exactly_the_changed() -> None:
    x = unit(30, 5, 5)
    ids = np.arange(30, dtype=np.int64)
    state = DbaState(2, 3.0)
    state.add(ids, x)
    before = state.augmented(ids)
    affected = state.remove([7])
    rest = ids[ids != 7]
    after = state.augmented(rest)
    changed = {int(i) for i, a, b in zip(rest, after, before[rest], strict=True)
               if not np.allclose(a, b)}
    assert changed <= affected


def test_rerank_bounds() -> None:
    Rerank(qe_k=2, dba_k=2)
    with pytest.raises(ConfigError, match="qe_k"):
        Rerank(qe_k=-1)
    with pytest.raises(ConfigError, match="dba_k"):
        Rerank(dba_k=51)
    with pytest.raises(ConfigError, match="qe_alpha"):
        Rerank(qe_alpha=float("nan"))
