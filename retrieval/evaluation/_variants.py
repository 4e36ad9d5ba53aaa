"""Pooling variants compared on one set of feature maps: each pooling, with and without whitening.

A :class:`Variant` is a pooling plus whether PCA-whitening follows it. :class:`Variants` holds one
:class:`~retrieval.features.Embedder` per pooling (sharing one backbone), fits those that learn
something (a learning pooling's state, whitening) on training maps, and turns each feature map into
the descriptors of *every* variant at once — so comparing five poolings costs one forward pass per
image, not five. The unwhitened and whitened descriptors of a pooling come from the same pooled
vector, exactly as :meth:`Embedder.describe_batch` computes them: ``l2(W (l2(pool(F)) - m))``.

Search is exact: inner products of L2-normalised descriptors (:func:`inner_product_scores`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from retrieval.errors import ConfigError
from retrieval.features import Backbone, Embedder, EmbedderConfig

__all__ = ["Variant", "Variants", "inner_product_scores"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Variant:
    """One evaluated configuration: a pooling, then whitening or not."""

    pooling: str
    whiten: bool = False

    @property
    def label(self) -> str:
        return f"{self.pooling}+whiten" if self.whiten else self.pooling


class Variants:
    """One :class:`Embedder` per config, sharing one backbone; each whitened one also unwhitened.

    The configs must differ in pooling (the pooling names the row of the table).
    """

    def __init__(self, backbone: Backbone, configs: Sequence[EmbedderConfig]) -> None:
        if not configs:
            raise ConfigError("no pooling to evaluate")
        names = [c.pooling for c in configs]
        if len(set(names)) != len(names):
            raise ConfigError(f"a pooling is named twice in {','.join(names)}")
        self.embedders = {c.pooling: Embedder(c, backbone) for c in configs}
        self.variants = tuple(Variant(c.pooling, w) for c in configs
                              for w in ((False, True) if c.whiten else (False,)))

    @property
    def needs_training(self) -> bool:
        return any(e.config.needs_training for e in self.embedders.values())

    def fit(self, maps: Sequence[torch.Tensor]) -> None:
        """Learn what each embedder learns (pooling state, whitening) from training maps."""
        for name, embedder in self.embedders.items():
            if embedder.config.needs_training:
                log.info("fitting %s%s on %d training images", name,
                         " + whitening" if embedder.config.whiten else "", len(maps))
                embedder.fit(maps)

    def dims(self) -> dict[Variant, int]:
        """Descriptor dimension of each variant (after :meth:`fit`)."""
        return {v: (self.embedders[v.pooling].dim if v.whiten
                    else self.embedders[v.pooling].pooled_dim) for v in self.variants}

    def describe(self, fmap: torch.Tensor) -> dict[Variant, F32]:
        """One map (C, h, w) -> the descriptor (d,) of every variant."""
        out: dict[Variant, F32] = {}
        for name, embedder in self.embedders.items():
            pooled = embedder.pooled(fmap[None])
            out[Variant(name, False)] = pooled[0]
            if embedder.whitening is not None:
                out[Variant(name, True)] = embedder.whitening.apply(pooled)[0]
        return out

    def describe_all(self, maps: Iterable[torch.Tensor | None], n: int) -> dict[Variant, F32]:
        """``n`` maps -> per variant an (n, d) matrix; a missing map (None) gets a zero row."""
        out = {v: np.zeros((n, d), dtype=np.float32) for v, d in self.dims().items()}
        count = 0
        for i, fmap in enumerate(maps):
            count += 1
            if fmap is None:
                continue
            for v, vec in self.describe(fmap).items():
                out[v][i] = vec
        if count != n:
            raise ConfigError(f"describe_all: {count} maps for {n} rows")
        return out


def inner_product_scores(xq: npt.ArrayLike, xb: npt.ArrayLike, *, chunk: int = 1024) -> F32:
    """Exact scores (nq, nb) = xq · xbᵀ in float32, ``chunk`` query rows at a time."""
    q = np.ascontiguousarray(xq, dtype=np.float32)
    b = np.ascontiguousarray(xb, dtype=np.float32)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
        raise ConfigError(f"xq {q.shape} and xb {b.shape} must be (nq, d) and (nb, d)")
    scores = np.empty((q.shape[0], b.shape[0]), dtype=np.float32)
    for start in range(0, q.shape[0], chunk):
        np.matmul(q[start:start + chunk], b.T, out=scores[start:start + chunk])
    return scores
