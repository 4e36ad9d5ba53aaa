"""Pooling variants compared on one set of feature maps: each pooling, with and without whitening.

A :class:`Variant` is a pooling plus whether PCA-whitening follows it. :class:`Variants` holds one
:class:`~retrieval.embedder.Embedder` per pooling (sharing one backbone), fits those that learn
something (MOP/VLAD codebooks, whitening) on training maps, and turns each feature map into the
descriptors of *every* variant at once — so comparing five poolings costs one forward pass per
image, not five. The unwhitened and whitened descriptors of a pooling come from the same pooled
vector, exactly as :meth:`Embedder.describe` computes them: ``l2(W (l2(pool(F)) - m))``.

Search is exact: inner products of L2-normalised descriptors (:func:`inner_product_scores`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import torch

from retrieval.backbone import Backbone
from retrieval.embedder import POOLING_NAMES, Embedder, EmbedderConfig
from retrieval.errors import ConfigError, UnknownNameError

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


def _l2(x: F32) -> F32:
    out: F32 = (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(
        np.float32)
    return out


class Variants:
    """Every pooling in ``poolings`` (each also whitened when ``whiten``), on one backbone."""

    def __init__(
        self, backbone: Backbone, base: EmbedderConfig, poolings: Sequence[str], *, whiten: bool
    ) -> None:
        if not poolings:
            raise ConfigError("no pooling to evaluate")
        for name in poolings:
            if name not in POOLING_NAMES:
                raise UnknownNameError("pooling", name, POOLING_NAMES)
        if len(set(poolings)) != len(poolings):
            raise ConfigError(f"a pooling is named twice in {','.join(poolings)}")
        self.whiten = whiten
        self.embedders = {p: Embedder(replace(base, pooling=p, whiten=whiten), backbone)
                          for p in poolings}
        flags = (False, True) if whiten else (False,)
        self.variants = tuple(Variant(p, w) for p in poolings for w in flags)

    @property
    def needs_training(self) -> bool:
        return any(e.config.needs_training for e in self.embedders.values())

    def fit(self, maps: Sequence[torch.Tensor]) -> None:
        """Learn MOP/VLAD and whitening (where asked for) from training maps (C, h, w)."""
        for name, embedder in self.embedders.items():
            if embedder.config.needs_training:
                log.info("fitting %s%s on %d training images", name,
                         " + whitening" if self.whiten else "", len(maps))
                embedder.fit(maps)

    def dims(self) -> dict[Variant, int]:
        """Descriptor dimension of each variant (after :meth:`fit`)."""
        dims: dict[Variant, int] = {}
        for v in self.variants:
            embedder = self.embedders[v.pooling]
            if v.whiten:
                dims[v] = embedder.dim
            elif embedder.mop is not None:
                dims[v] = embedder.mop.dim
            else:
                dims[v] = embedder.backbone.channels
        return dims

    def describe(self, fmap: torch.Tensor) -> dict[Variant, F32]:
        """One map (C, h, w) -> the descriptor (d,) of every variant."""
        out: dict[Variant, F32] = {}
        for name, embedder in self.embedders.items():
            pooled = embedder.pooled(fmap[None])
            out[Variant(name, False)] = pooled[0]
            if self.whiten:
                if embedder.whitening is None:
                    raise ConfigError("whitening is not fitted: fit() on training maps first")
                out[Variant(name, True)] = _l2(embedder.whitening.apply(pooled))[0]
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
