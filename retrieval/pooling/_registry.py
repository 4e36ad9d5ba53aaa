"""The poolings by name. A new pooling is one module and one entry in ``_BUILTIN``."""

from __future__ import annotations

from collections.abc import Mapping

from retrieval.errors import ConfigError, UnknownNameError
from retrieval.pooling._avg import Avg
from retrieval.pooling._base import Pooling
from retrieval.pooling._crow import CroW
from retrieval.pooling._gem import GeM
from retrieval.pooling._lse import LSE
from retrieval.pooling._max import Max
from retrieval.pooling._mixed import Mixed
from retrieval.pooling._mop import Mop
from retrieval.pooling._rmac import RMac
from retrieval.pooling._softpool import SoftPool
from retrieval.pooling._spoc import SPoC
from retrieval.pooling._stochastic import Stochastic
from retrieval.pooling._sum import Sum

__all__ = ["POOLINGS", "make_pooling", "pooling_class", "pooling_names", "register_pooling"]

_BUILTIN: tuple[type[Pooling], ...] = (Sum, Avg, Max, GeM, Mop, RMac, CroW, SPoC, Mixed,
                                        Stochastic, SoftPool, LSE)

#: Every known pooling class by name (read-only outside :func:`register_pooling`).
POOLINGS: dict[str, type[Pooling]] = {}


def register_pooling(cls: type[Pooling]) -> type[Pooling]:
    """Add a pooling class under its ``name`` (usable as a class decorator)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ConfigError(f"a pooling needs a lower-case identifier as name, got {name!r}")
    if name in POOLINGS and POOLINGS[name] is not cls:
        raise ConfigError(f"a pooling named {name!r} is already registered")
    POOLINGS[name] = cls
    return cls


def pooling_names() -> tuple[str, ...]:
    return tuple(POOLINGS)


def pooling_class(name: str) -> type[Pooling]:
    """The class registered as ``name``; :class:`UnknownNameError` lists the valid names."""
    try:
        return POOLINGS[name]
    except KeyError:
        raise UnknownNameError("pooling", name, POOLINGS) from None


def make_pooling(name: str, params: Mapping[str, object] | None = None) -> Pooling:
    """A new (unfitted) pooling ``name`` with ``params`` (defaults for the rest)."""
    return pooling_class(name)(**dict(params or {}))


for _cls in _BUILTIN:
    register_pooling(_cls)
