"""PCA-whitening as a fitted post-processing step (Jégou & Chum, ECCV 2012).

Learned on L2-normalised pooled training vectors; applied as ``l2(W (v − m))``. It has the same
fit / state_arrays / load_state shape as a learning pooling, and is saved with the index.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from retrieval._arrays import l2_normalize_rows
from retrieval._pca import PCA
from retrieval.errors import ArtifactError, ConfigError

__all__ = ["Whitening"]

F32 = npt.NDArray[np.float32]


class Whitening:
    """PCA-whitening down to ``dim`` dimensions (``None``: the training set's rank)."""

    name = "whitening"

    def __init__(self, dim: int | None = None) -> None:
        self.requested_dim = dim
        self.pca: PCA | None = None

    @property
    def is_fitted(self) -> bool:
        return self.pca is not None

    def _fitted(self) -> PCA:
        if self.pca is None:
            raise ConfigError("whitening is not fitted: fit() it on training images first")
        return self.pca

    @property
    def dim(self) -> int:
        return self._fitted().dim

    def fit(self, vectors: npt.ArrayLike) -> None:
        self.pca = PCA.fit(np.asarray(vectors, dtype=np.float32), self.requested_dim, whiten=True)

    def apply(self, vectors: npt.ArrayLike) -> F32:
        return l2_normalize_rows(self._fitted().apply(vectors))

    def state_arrays(self) -> dict[str, F32]:
        pca = self._fitted()
        return {"mean": pca.mean, "components": pca.components}

    def load_state(self, arrays: Mapping[str, F32]) -> None:
        try:
            mean, components = arrays["mean"], arrays["components"]
        except KeyError as exc:
            raise ArtifactError(f"whitening state lacks {exc}") from exc
        if components.ndim != 2 or mean.shape != (components.shape[1],):
            raise ArtifactError("whitening state has inconsistent shapes")
        self.pca = PCA(mean.astype(np.float32), components.astype(np.float32))
