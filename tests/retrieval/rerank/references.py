"""Brute-force references for the re-ranking kernel, written out loop by loop (no kernel code)."""

from __future__ import annotations

import numpy as np


def unit(n: int, d: int, seed: int, power: float = 1.0) -> np.ndarray:
    """n random non-negative unit vectors (float64), seeded."""
    x = np.abs(np.random.default_rng(seed).normal(size=(n, d))) ** power
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ranked(sims: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(cosine, id) pairs best first, ties by the lower id."""
    return sorted(sims, key=lambda t: (-t[0], t[1]))


def expanded(x: np.ndarray, neighbours: list[tuple[float, np.ndarray]], alpha: float) -> np.ndarray:
    """x + Σ max(s, 0)^α x_i, normalised."""
    v = np.array(x, dtype=np.float64)
    for s, xi in neighbours:
        v = v + max(s, 0.0) ** alpha * xi
    return v / np.linalg.norm(v)


def neighbour_ids(x: np.ndarray, ids: list[int], k: int) -> list[list[int]]:
    """Each vector's top-k ids among the others (ties by the lower id)."""
    out = []
    for j in range(len(x)):
        sims = [(float(x[j] @ x[i]), ids[i]) for i in range(len(x)) if i != j]
        out.append([i for _, i in ranked(sims)[:k]])
    return out


def brute_dba(x: np.ndarray, k: int, alpha: float, ids: list[int] | None = None) -> np.ndarray:
    """DBA of every row of ``x`` over the others (rows labelled ``ids``, default 0..n-1)."""
    labels = list(range(len(x))) if ids is None else ids
    row = {i: r for r, i in enumerate(labels)}
    out = []
    for j, nn in enumerate(neighbour_ids(x, labels, k)):
        out.append(expanded(x[j], [(float(x[j] @ x[row[i]]), x[row[i]]) for i in nn], alpha))
    return np.array(out).reshape(x.shape)
