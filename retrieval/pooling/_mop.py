"""MOP/VLAD as a pooling: multi-scale orderless pooling with learned codebooks and PCAs.

Gong, Wang, Guo & Lazebnik, "Multi-scale Orderless Pooling of Deep Convolutional Activation
Features", ECCV 2014 — the variant described in :mod:`retrieval.pooling._vlad`. The only seed
pooling that learns: ``fit`` trains one k-means codebook and one PCA per level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from retrieval.errors import ConfigError
from retrieval.pooling._base import F32, Param, ParamValue, Pooling
from retrieval.pooling._vlad import MopParams, MopVlad

__all__ = ["Mop"]


def _regions_problem(value: ParamValue) -> str | None:
    try:
        regions = [int(r) for r in str(value).split(",")]
    except ValueError:
        return f"must be comma-separated window sizes such as 2,1, got {value!r}"
    return None if regions and min(regions) >= 1 else f"window sizes must be >= 1, got {value!r}"


class Mop(Pooling):
    name = "mop"
    learns = True
    params = (
        Param("k", 32, "MOP/VLAD codebook size", low=1, aliases=("vlad-k",)),
        Param("regions", "2,1", "window sizes (cells) of the VLAD levels, coarse to fine",
              check=_regions_problem),
        Param("pca_dim", 512, "PCA dimension of each VLAD level", low=1),
        Param("seed", 0, "seed of the k-means codebooks"),
    )

    def __init__(self, **values: object) -> None:
        super().__init__(**values)
        v = self.values
        self.mop_params = MopParams(
            k=int(v["k"]), regions=tuple(int(r) for r in str(v["regions"]).split(",")),
            pca_dim=int(v["pca_dim"]), seed=int(v["seed"]))
        self.fitted: MopVlad | None = None

    @property
    def is_fitted(self) -> bool:
        return self.fitted is not None

    def fit(self, fmaps: Sequence[torch.Tensor]) -> None:
        self.fitted = MopVlad.fit(fmaps, self.mop_params)

    def _state(self) -> MopVlad:
        if self.fitted is None:
            raise ConfigError("MOP/VLAD is not fitted: fit() it on training images first")
        return self.fitted

    def output_dim(self, channels: int) -> int:
        return self._state().dim

    def encode(self, fmaps: torch.Tensor) -> F32:
        return self._state().encode(fmaps)

    def state_arrays(self) -> dict[str, F32]:
        return self._state().to_arrays() if self.fitted is not None else {}

    def load_state(self, arrays: Mapping[str, F32]) -> None:
        self.fitted = MopVlad.from_arrays(self.mop_params, dict(arrays))
