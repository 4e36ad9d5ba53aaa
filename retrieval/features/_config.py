"""``EmbedderConfig``: everything that decides what a descriptor means (it goes into the manifest).

Runtime choices (device, precision, batch size) are not part of it: they change how fast a vector
is made, not what it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from retrieval.errors import ConfigError, UnknownNameError
from retrieval.features._backbone import BACKBONES
from retrieval.pooling import ParamValue, pooling_class

__all__ = ["EmbedderConfig"]


@dataclass(frozen=True)
class EmbedderConfig:
    """Backbone, weights, image size, pooling (+ its parameters) and whitening.

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

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise UnknownNameError("backbone", self.backbone, BACKBONES)
        if self.max_side is not None and self.max_side < 32:
            raise ConfigError(f"max_side must be at least 32, got {self.max_side}")
        if self.whiten_dim is not None and self.whiten_dim < 1:
            raise ConfigError(f"whiten_dim must be positive, got {self.whiten_dim}")
        resolved = pooling_class(self.pooling).resolve(self.pooling_params)
        object.__setattr__(self, "pooling_params", MappingProxyType(resolved))

    @property
    def image_side(self) -> int:
        """The longer side images are resized to."""
        return self.max_side or BACKBONES[self.backbone].default_max_side

    @property
    def needs_training(self) -> bool:
        return pooling_class(self.pooling).learns or self.whiten
