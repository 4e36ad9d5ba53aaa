"""Global poolings: pure functions from feature maps (N, C, h, w) to vectors (N, C).

* ``sum`` — SPoC, sum pooling (Babenko & Lempitsky, "Aggregating Deep Convolutional Features for
  Image Retrieval", ICCV 2015), without the centring prior.
* ``avg`` — average pooling: SUM divided by h·w (identical after L2 normalisation on one image).
* ``max`` — MAC, maximum activation of convolutions (Tolias et al., ICLR 2016).
* ``gem`` — generalized mean (Radenović et al., TPAMI 2018): (mean(clamp(x, eps)^p))^(1/p),
  here with a fixed p (default 3); p=1 is ``avg``, p → ∞ tends to ``max``.

``l2_normalize`` is applied by the embedder after pooling. MOP/VLAD, the only pooling with learned
state, lives in :mod:`retrieval.vlad`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from retrieval.errors import ConfigError, UnknownNameError

__all__ = [
    "POOLINGS",
    "PoolingFn",
    "get_pooling",
    "l2_normalize",
    "pool_avg",
    "pool_gem",
    "pool_max",
    "pool_sum",
]

PoolingFn = Callable[[torch.Tensor], torch.Tensor]


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ConfigError(f"pooling expects feature maps (N, C, h, w), got shape {tuple(x.shape)}")


def pool_sum(x: torch.Tensor) -> torch.Tensor:
    """SPoC: sum over the spatial cells."""
    _check(x)
    return x.sum(dim=(2, 3))


def pool_avg(x: torch.Tensor) -> torch.Tensor:
    """Average over the spatial cells."""
    _check(x)
    return x.mean(dim=(2, 3))


def pool_max(x: torch.Tensor) -> torch.Tensor:
    """MAC: maximum over the spatial cells."""
    _check(x)
    return x.amax(dim=(2, 3))


def pool_gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalized mean with a fixed exponent ``p``; activations are clamped at ``eps``."""
    _check(x)
    if p <= 0:
        raise ConfigError(f"GeM exponent p must be positive, got {p}")
    return x.clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    out: torch.Tensor = x / x.norm(dim=-1, keepdim=True).clamp(min=eps)
    return out


POOLINGS: dict[str, PoolingFn] = {
    "sum": pool_sum,
    "avg": pool_avg,
    "max": pool_max,
    "gem": pool_gem,
}


def get_pooling(name: str, params: Mapping[str, float | int | str] | None = None) -> PoolingFn:
    """The pooling called ``name``; ``params`` are keyword arguments (only ``gem`` takes ``p``)."""
    fn = POOLINGS.get(name)
    if fn is None:
        raise UnknownNameError("pooling", name, [*POOLINGS, "mop"])
    kwargs = dict(params or {})
    if not kwargs:
        return fn
    if name != "gem" or set(kwargs) - {"p"}:
        raise ConfigError(f"pooling {name!r} takes no parameters {sorted(kwargs)}")
    p = float(kwargs["p"])
    return lambda x: pool_gem(x, p=p)
