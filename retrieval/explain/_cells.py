"""Per-cell parts of a pooled vector: for a map F (C, h, w), a tensor P (C, h, w) whose sum over
the cells is the pooling's vector v (C,) — each channel's value split over the cells it came from.

How each pooling is split (the :data:`ATTRIBUTIONS` registry, by pooling name):

========== ============== ===================================================================
pooling    kind           P[c, i, j]
========== ============== ===================================================================
sum        linear         F[c, i, j]  (exact: v is this sum)
avg        linear         F[c, i, j] / (h·w)
spoc       linear         α[i, j] F[c, i, j]  (α the centring prior)
crow       linear         Ω[c] S[i, j] F[c, i, j]  (CroW's weights, taken as given)
max        winning cells  v[c] at the cell holding channel c's maximum (first one on ties)
rmac       winning cells  Σ over regions r of m_r[c] / (‖m_r‖ + eps) at r's maximum cell of c
mixed      linear + win   λ·max part at the winning cell + (1 − λ)·F / (h·w)
gem        power share    v[c] · F^p / Σ F^p  (the cell's share of the mean of p-th powers)
stochastic power share    F² / Σ F  (its expectation form, term by term: exact)
softpool   power share    softmax(F)·F  (its weighted mean, term by term: exact)
lse        power share    v[c] · softmax(r·F)  (the cell's share of the log-sum-exp)
========== ============== ===================================================================

"linear" and the term-by-term forms are exact decompositions of v; "winning cells" are exact
too (a maximum is the value of one cell); "power share" of GeM and LSE is an attribution (v is not
a sum over cells): the cell's share of what the pooling aggregates. Poolings that learn a
codebook (MOP/VLAD: their vector is not indexed by channels) have no attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from retrieval.errors import ConfigError
from retrieval.pooling import Pooling
from retrieval.pooling import functional as fn

__all__ = ["ATTRIBUTIONS", "Attribution", "cell_parts"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Split = Callable[[torch.Tensor, Mapping[str, object]], torch.Tensor]


@dataclass(frozen=True)
class Attribution:
    kind: str  # "linear", "winning cells", "power share"
    split: Split


def _winner(x: torch.Tensor) -> torch.Tensor:
    """One-hot (C, h, w) of each channel's first maximum cell, times that maximum."""
    c, h, w = x.shape
    flat = x.reshape(c, h * w)
    best = flat.argmax(dim=1)
    out = torch.zeros_like(flat)
    out[torch.arange(c), best] = flat[torch.arange(c), best]
    return out.reshape(c, h, w)


def _rmac(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    out = torch.zeros_like(x)
    for i, j, hh, ww in fn.rmac_regions(x.shape[1], x.shape[2], int(str(values["levels"]))):
        region = x[:, i:i + hh, j:j + ww]
        m = region.amax(dim=(1, 2))
        out[:, i:i + hh, j:j + ww] += _winner(region) / (m.norm() + 1e-6)
    return out


def _gem(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    p = float(str(values["p"]))
    powered = x.clamp(min=1e-6).pow(p)
    v = powered.mean(dim=(1, 2)).pow(1.0 / p)
    return v[:, None, None] * powered / powered.sum(dim=(1, 2), keepdim=True)


def _crow(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    omega, s = fn.crow_weights(x[None], float(str(values["a"])), float(str(values["b"])))
    return omega[0][:, None, None] * s[0][None] * x


def _mixed(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    lam = float(str(values["lam"]))
    return lam * _winner(x) + (1.0 - lam) * x / (x.shape[1] * x.shape[2])


def _stochastic(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    s1 = x.sum(dim=(1, 2), keepdim=True)
    return torch.where(s1 > 0, x * x / torch.where(s1 > 0, s1, torch.ones_like(s1)),
                       torch.zeros_like(x))


def _softpool(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    c = x.shape[0]
    weights = torch.softmax(x.reshape(c, -1), dim=1).reshape(x.shape)
    return weights * x


def _lse(x: torch.Tensor, values: Mapping[str, object]) -> torch.Tensor:
    r = float(str(values["r"]))
    c = x.shape[0]
    v = fn.lse(x[None], r)[0]
    return v[:, None, None] * torch.softmax(r * x.reshape(c, -1), dim=1).reshape(x.shape)


ATTRIBUTIONS: dict[str, Attribution] = {
    "sum": Attribution("linear", lambda x, _: x),
    "avg": Attribution("linear", lambda x, _: x / (x.shape[1] * x.shape[2])),
    "spoc": Attribution("linear", lambda x, _: fn.spoc_prior(x.shape[1], x.shape[2],
                                                             x.dtype)[None] * x),
    "crow": Attribution("linear", _crow),
    "max": Attribution("winning cells", lambda x, _: _winner(x)),
    "rmac": Attribution("winning cells", _rmac),
    "mixed": Attribution("linear + winning cells", _mixed),
    "gem": Attribution("power share", _gem),
    "stochastic": Attribution("power share", _stochastic),
    "softpool": Attribution("power share", _softpool),
    "lse": Attribution("power share", _lse),
}


def cell_parts(pooling: Pooling, fmap: npt.ArrayLike) -> tuple[str, F64]:
    """The attribution kind and P (C, h, w), float64, of ``pooling`` on one map (C, h, w);
    :class:`ConfigError` for a pooling without an attribution (the list names those with)."""
    attribution = ATTRIBUTIONS.get(pooling.name)
    if attribution is None:
        raise ConfigError(f"pooling {pooling.name!r} has no per-cell explanation (it has: "
                          f"{', '.join(sorted(ATTRIBUTIONS))})")
    x = torch.as_tensor(np.asarray(fmap, dtype=np.float32), dtype=torch.float64)
    if x.dim() != 3:
        raise ConfigError(f"a feature map is (C, h, w), got shape {tuple(x.shape)}")
    parts = attribution.split(x, pooling.values)
    return attribution.kind, parts.numpy()
