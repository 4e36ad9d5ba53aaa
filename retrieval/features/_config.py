"""``EmbedderConfig``: everything that decides what a descriptor means (it goes into the manifest).

Runtime choices (device, precision, batch size) are not part of it: they change how fast a vector
is made, not what it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from retrieval.errors import ConfigError, UnknownNameError
from retrieval.features._backbone import BACKBONES
from retrieval.pooling import ParamValue, pooling_class

__all__ = ["MAX_SCALES", "MIN_SIDE", "EmbedderConfig", "check_scales"]

MIN_SIDE = 32
MAX_SCALES = 8


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """``scales`` as a tuple of floats in (0, 2], distinct, at most :data:`MAX_SCALES`."""
    if isinstance(scales, str | bytes) or not scales:
        raise ConfigError(f"scales must be a non-empty list of numbers, got {scales!r}")
    out = tuple(float(s) for s in scales)
    if len(out) > MAX_SCALES:
        raise ConfigError(f"at most {MAX_SCALES} scales, got {len(out)}")
    if any(not 0 < s <= 2 for s in out):
        raise ConfigError(f"every scale must be in (0, 2], got {list(out)}")
    if len(set(out)) != len(out):
        raise ConfigError(f"scales must be distinct, got {list(out)}")
    return out


@dataclass(frozen=True)
class EmbedderConfig:
    """Backbone, weights, image size, scales, pooling (+ its parameters) and whitening.

    ``scales`` are relative to the image side: the network runs at each ``round(side · s)`` and
    the per-scale pooled vectors are L2-normalised, summed and L2-normalised again (``(1.0,)``:
    one scale, the plain descriptor).

    ``pooling_params`` is completed with the pooling's declared defaults and validated against its
    declaration, so two configs that mean the same thing compare equal.
    """

    backbone: str = "vgg16"
    weights: str = "imagenet"
    max_side: int | None = None
    pooling: str = "sum"
    pooling_params: Mapping[str, ParamValue] = field(default_factory=dict, hash=False)
    whiten: bool = False
    whiten_dim: int | None = None
    seed: int = 0
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise UnknownNameError("backbone", self.backbone, BACKBONES)
        if self.max_side is not None and self.max_side < 32:
            raise ConfigError(f"max_side must be at least 32, got {self.max_side}")
        if self.whiten_dim is not None and self.whiten_dim < 1:
            raise ConfigError(f"whiten_dim must be positive, got {self.whiten_dim}")
        object.__setattr__(self, "scales", check_scales(self.scales))
        if min(self.image_sides) < MIN_SIDE:
            raise ConfigError(f"scales {list(self.scales)} of side {self.image_side} give a side "
                              f"below {MIN_SIDE} px")
        resolved = pooling_class(self.pooling).resolve(self.pooling_params)
        object.__setattr__(self, "pooling_params", MappingProxyType(resolved))

    @property
    def image_side(self) -> int:
        """The longer side images are resized to."""
        return self.max_side or BACKBONES[self.backbone].default_max_side

    @property
    def image_sides(self) -> tuple[int, ...]:
        """The longer side of each scale, in order (the first is the reference scale)."""
        return tuple(round(self.image_side * s) for s in self.scales)

    @property
    def needs_training(self) -> bool:
        return pooling_class(self.pooling).learns or self.whiten
