"""Why two images match: the similarity ``s = q · y`` of a partner descriptor ``q`` and the
descriptor ``y`` of an image, split over the cells of the image's feature map.

The descriptor is (:mod:`retrieval.features._embedder`) ``y = l2n(W (u − m))`` (whitening) or
``u``, with ``u = l2n(Σ_s l2n(v_s))`` over the scales and ``v_s = Σ_cells P_s`` (the per-cell
parts of the pooled vector, :mod:`._cells`). Every step after the pooling is linear up to the
norms, taken as constants, so ``s = Σ_s Σ_cells g · P_s[:, cell] / (‖v_s‖ ‖Σ x_s‖) + c0`` with
``g = Wᵀ q / ‖W (u − m)‖`` and ``c0 = −q · W m / ‖W (u − m)‖`` (``g = q``, ``c0 = 0`` without
whitening): each cell's term is its share of the dot product, and the terms sum to ``s``.
``c0`` (the whitening mean's part, no cell's) is spread evenly over the cells. The cells of a
further scale are moved onto the first scale's grid by area overlap (each cell's value is split
over the cells it overlaps, in proportion to the overlap: sums are kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.explain._cells import cell_parts
from retrieval.pooling import Pooling

__all__ = ["Explanation", "explain_match", "resample_sum"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
_EPS = 1e-12


@dataclass(frozen=True)
class Explanation:
    """``grid`` (h, w): each cell's part of ``similarity`` (they sum to it), on the first
    scale's feature map; ``kind``: how the pooling was split (:mod:`._cells`); ``descriptor``:
    the image's descriptor rebuilt from its maps (what ``similarity`` is the dot product of)."""

    grid: F64
    similarity: float
    kind: str
    descriptor: F32


def _overlap(n_from: int, n_to: int) -> F64:
    """(n_to, n_from): the share of each source interval of [0, 1) inside each target one."""
    edges_from = np.linspace(0.0, 1.0, n_from + 1)
    edges_to = np.linspace(0.0, 1.0, n_to + 1)
    lo = np.maximum(edges_to[:-1, None], edges_from[None, :-1])
    hi = np.minimum(edges_to[1:, None], edges_from[None, 1:])
    out: F64 = np.asarray(np.clip(hi - lo, 0.0, None) * n_from, dtype=np.float64)
    return out


def resample_sum(grid: npt.ArrayLike, shape: tuple[int, int]) -> F64:
    """``grid`` (h, w) moved onto ``shape`` by area overlap; the total is kept."""
    g = np.asarray(grid, dtype=np.float64)
    rows, cols = _overlap(g.shape[0], shape[0]), _overlap(g.shape[1], shape[1])
    out: F64 = np.asarray(rows @ g @ cols.T, dtype=np.float64)
    return out


def explain_match(pooling: Pooling, maps: Sequence[npt.ArrayLike], partner: npt.ArrayLike, *,
                  whitening: tuple[npt.ArrayLike, npt.ArrayLike] | None = None) -> Explanation:
    """The cells of an image's ``maps`` (C, h_s, w_s per scale, first scale first) behind its
    similarity to ``partner`` (d,); ``whitening``: the fitted (mean, components) if any."""
    if not maps:
        raise ConfigError("explain_match needs the image's feature maps")
    kinds, parts = zip(*(cell_parts(pooling, m) for m in maps), strict=True)
    pooled = [p.sum(axis=(1, 2)) for p in parts]
    norms = [max(float(np.linalg.norm(v)), _EPS) for v in pooled]
    total = sum(v / n for v, n in zip(pooled, norms, strict=True))
    u_norm = max(float(np.linalg.norm(total)), _EPS)
    u = total / u_norm
    q = np.asarray(partner, dtype=np.float64).reshape(-1)
    g, c0, y = _partner_side(u, q, whitening)
    shape = parts[0].shape[1:]
    grid = np.zeros(shape, dtype=np.float64)
    for p, n in zip(parts, norms, strict=True):
        cells = np.tensordot(g, p, axes=(0, 0)) / (n * u_norm)
        grid += cells if cells.shape == shape else resample_sum(cells, shape)
    grid += c0 / grid.size
    return Explanation(grid, float(grid.sum()), kinds[0], y.astype(np.float32))


def _partner_side(u: F64, q: F64, whitening: tuple[npt.ArrayLike, npt.ArrayLike] | None
                  ) -> tuple[F64, float, F64]:
    """``g``, ``c0`` (module docstring) and the final descriptor ``y``."""
    if whitening is None:
        if q.shape != u.shape:
            raise ConfigError(f"the partner descriptor has {q.size} dimensions, the image's "
                              f"{u.size}")
        return q, 0.0, u
    mean = np.asarray(whitening[0], dtype=np.float64)
    w = np.asarray(whitening[1], dtype=np.float64)
    if q.shape != (w.shape[0],) or mean.shape != u.shape:
        raise ConfigError(f"the partner descriptor has {q.size} dimensions, the whitening "
                          f"gives {w.shape[0]}")
    raw = w @ (u - mean)
    n = max(float(np.linalg.norm(raw)), _EPS)
    return w.T @ q / n, float(-(q @ (w @ mean)) / n), raw / n
