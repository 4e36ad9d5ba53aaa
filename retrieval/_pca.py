"""Principal component analysis, optionally whitened: the one linear projection cbir learns.

Fitted on training rows X (n, d): mean m and the eigen-decomposition of the covariance
C = V diag(λ) Vᵀ. ``apply`` maps x to W (x − m), with W = V[:, :dim]ᵀ, or, whitened
(Jégou & Chum 2012), W = diag((λ + ε)^(−1/2)) V[:, :dim]ᵀ. The output dimension is capped at the
training set's rank (n − 1): directions without variance carry nothing to keep or whiten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError

__all__ = ["PCA"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PCA:
    """A fitted projection: ``mean`` (d,), ``components`` (dim, d)."""

    mean: F32
    components: F32

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def d_in(self) -> int:
        return int(self.components.shape[1])

    @classmethod
    def fit(
        cls, x: npt.ArrayLike, dim: int | None = None, *, whiten: bool = False, eps: float = 1e-6
    ) -> PCA:
        """Learn from training rows ``x`` (n, d); ``dim`` None keeps all with variance."""
        xt = np.asarray(x, dtype=np.float64)
        if xt.ndim != 2 or xt.shape[0] < 2:
            raise ConfigError(f"PCA needs at least 2 training vectors, got shape {xt.shape}")
        n, d = xt.shape
        out = _output_dim(n, d, dim)
        mean = xt.mean(axis=0)
        # Thin SVD of the centred data: right singular vectors are the covariance eigenvectors.
        _, s, vt = np.linalg.svd(xt - mean, full_matrices=False)
        components = vt[:out]
        if whiten:
            _warn_if_few(n, out)
            eigval = s[:out] ** 2 / n
            components = components / np.sqrt(eigval + eps)[:, None]
        return cls(mean.astype(np.float32), np.ascontiguousarray(components, dtype=np.float32))

    def apply(self, x: npt.ArrayLike) -> F32:
        """Project rows of ``x`` (n, d_in) -> (n, dim)."""
        xa = np.asarray(x, dtype=np.float32)
        if xa.ndim != 2 or xa.shape[1] != self.d_in:
            raise ConfigError(f"PCA expects (n, {self.d_in}) vectors, got shape {xa.shape}")
        return np.ascontiguousarray((xa - self.mean) @ self.components.T, dtype=np.float32)


#: Whitening learned on fewer than this many vectors per output dimension mostly amplifies noise.
WHITEN_MIN_PER_DIM = 10


def _warn_if_few(n: int, dim: int) -> None:
    if n < WHITEN_MIN_PER_DIM * dim:
        log.warning("whitening learned on %d vectors for %d dimensions is unreliable and often "
                    "lowers retrieval quality: learn it on at least %d images (another, larger "
                    "collection) or lower its dimension", n, dim, WHITEN_MIN_PER_DIM * dim)


def _output_dim(n: int, d: int, dim: int | None) -> int:
    rank = min(d, n - 1)
    if dim is None:
        return rank
    if dim < 1:
        raise ConfigError(f"PCA dimension must be positive, got {dim}")
    if dim > rank:
        log.warning("PCA: %d training vectors of dimension %d give rank %d; dimension %d -> %d",
                    n, d, rank, dim, rank)
    return min(dim, rank)
