"""The pooling protocol: a named, parameterised map -> vector step, fitted where it learns.

A pooling is a subclass of :class:`Pooling` with a ``name``, a tuple of :class:`Param`
declarations and ``encode``. Its parameters are validated once, at construction, against the
declarations (type, bounds, default); the declaration is also what the CLI turns into flags
(``--<pooling>-<param>``) and what the manifest records. A pooling that learns something (MOP/VLAD)
sets ``learns = True`` and implements ``fit``, ``state_arrays`` and ``load_state``; the others
inherit no-ops.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import torch

from retrieval.errors import ArtifactError, ConfigError

__all__ = ["F32", "MapPooling", "Param", "ParamValue", "Pooling"]

F32 = npt.NDArray[np.float32]
ParamValue = bool | int | float | str


@dataclass(frozen=True)
class Param:
    """One declared parameter: its name, default (whose type is the parameter's), help and bounds.

    ``low``/``high`` are inclusive bounds of a number; ``check`` returns a problem or ``None``;
    ``aliases`` are extra CLI flag names (without ``--``) kept for compatibility.
    """

    name: str
    default: ParamValue
    help: str
    low: float | None = None
    high: float | None = None
    check: Callable[[ParamValue], str | None] | None = None
    aliases: tuple[str, ...] = ()

    @property
    def kind(self) -> type[bool] | type[int] | type[float] | type[str]:
        return type(self.default)

    def parse(self, value: object, owner: str) -> ParamValue:
        """``value`` converted to this parameter's type and checked; :class:`ConfigError` if not."""
        where = f"pooling {owner!r} parameter {self.name!r}"
        out = _convert(self.kind, value, where)
        if isinstance(out, int | float) and not isinstance(out, bool):
            if not math.isfinite(out):
                raise ConfigError(f"{where} must be finite, got {value!r}")
            if self.low is not None and out < self.low:
                raise ConfigError(f"{where} must be at least {self.low:g}, got {value!r}")
            if self.high is not None and out > self.high:
                raise ConfigError(f"{where} must be at most {self.high:g}, got {value!r}")
        if self.check is not None and (problem := self.check(out)):
            raise ConfigError(f"{where}: {problem}")
        return out


def _convert(kind: type, value: object, where: str) -> ParamValue:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be a boolean, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if not number.is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(number)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    return str(value)


class Pooling(ABC):
    """Feature maps (N, C, h, w) -> pooled vectors (N, d); the embedder L2-normalises them."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    learns: ClassVar[bool] = False

    def __init__(self, **values: object) -> None:
        self.values: dict[str, ParamValue] = self.resolve(values)

    @classmethod
    def resolve(cls, values: Mapping[str, object]) -> dict[str, ParamValue]:
        """Every declared parameter, from ``values`` or its default, validated."""
        declared = {p.name: p for p in cls.params}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            takes = ", ".join(declared) if declared else "none"
            raise ConfigError(f"pooling {cls.name!r} has no parameter {', '.join(unknown)} "
                              f"(it takes: {takes})")
        return {n: p.parse(values.get(n, p.default), cls.name) for n, p in declared.items()}

    @property
    def is_fitted(self) -> bool:
        return True

    def fit(self, fmaps: Sequence[torch.Tensor]) -> None:  # noqa: B027 - a no-op by design
        """Learn from training maps (C, h, w); nothing to learn unless ``learns``."""

    def output_dim(self, channels: int) -> int:
        """The dimension of :meth:`encode`'s vectors for maps with ``channels`` channels."""
        return channels

    @abstractmethod
    def encode(self, fmaps: torch.Tensor) -> F32:
        """Maps (N, C, h, w) -> vectors (N, d), float32, not yet L2-normalised."""

    def state_arrays(self) -> dict[str, F32]:
        """The fitted state as named arrays (saved with the index); empty when nothing is fitted."""
        return {}

    def load_state(self, arrays: Mapping[str, F32]) -> None:
        """Restore what :meth:`state_arrays` returned."""
        if arrays:
            raise ArtifactError(f"pooling {self.name!r} has no fitted state, got {sorted(arrays)}")


class MapPooling(Pooling):
    """A pure pooling: ``pool`` is a function of the map alone (see :mod:`.functional`)."""

    @abstractmethod
    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float32 -> (N, C)."""

    def encode(self, fmaps: torch.Tensor) -> F32:
        if fmaps.dim() != 4:
            raise ConfigError(f"pooling expects feature maps (N, C, h, w), "
                              f"got {tuple(fmaps.shape)}")
        out: F32 = self.pool(fmaps.float()).cpu().numpy().astype(np.float32)
        return out
