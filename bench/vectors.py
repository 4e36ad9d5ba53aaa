"""Synthetic descriptors for the index-scale part, their exact neighbours, and recall.

Real CNN descriptors are neither uniform nor isotropic: they cluster (by place, object, scene) and
have a low intrinsic dimension. The generator mimics that — Gaussian clusters in a 64-D latent
space, lifted to 512-D by a fixed random map, plus isotropic noise, then L2-normalised — so that
approximate indexes face a realistic problem instead of the degenerate one uniform random vectors
pose (where every point is almost equally far from every other). The cluster count and spread
are set so that the cheapest approximate settings are not already exact (at 10^5, IVF1024 needs
``nprobe`` around 16 for recall@10 0.95). Seeded; queries are fresh draws from the same
distribution, not database vectors.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

__all__ = ["clustered", "exact_neighbours", "recall_at"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

CLUSTERS = 2000
LATENT = 64
SPREAD = 0.8  # within-cluster standard deviation in the latent space (centres have 1.0)
NOISE = 0.1  # isotropic noise added in the full space
_CHUNK = 50_000


def clustered(n: int, d: int = 512, *, seed: int = 0) -> F32:
    """``n`` L2-normalised ``d``-D vectors from the distribution described above."""
    rng = np.random.default_rng(seed)
    lift = (rng.standard_normal((LATENT, d), dtype=np.float32) / np.sqrt(LATENT)).astype(
        np.float32)
    centres = rng.standard_normal((CLUSTERS, LATENT), dtype=np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        z = centres[rng.integers(0, CLUSTERS, m)]
        z += SPREAD * rng.standard_normal((m, LATENT), dtype=np.float32)
        x = z @ lift
        x += NOISE * rng.standard_normal((m, d), dtype=np.float32)
        out[start:start + m] = x
    faiss.normalize_L2(out)
    return out


def exact_neighbours(xb: F32, xq: F32, k: int) -> I64:
    """The true top ``k`` by inner product (what the project's Flat index returns)."""
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    _, ids = index.search(xq, k)
    result: I64 = ids.astype(np.int64)
    return result


def recall_at(found: I64, truth: I64) -> float:
    """Mean share of the true top k found in the returned top k (recall@k, k = truth's width)."""
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth,
                                                                          strict=True))
    return float(hits / (k * len(truth)))
