"""Poolings: feature maps (N, C, h, w) -> one vector per map, all behind one protocol.

``functional`` holds the pure closed forms; each pooling is one private module with one class (a
:class:`Pooling`), registered by name in ``_registry``. See :class:`Pooling` for the protocol.
"""

from retrieval.pooling._base import MapPooling, Param, ParamValue, Pooling
from retrieval.pooling._registry import (
    POOLINGS,
    make_pooling,
    pooling_class,
    pooling_names,
    register_pooling,
)

__all__ = [
    "POOLINGS",
    "MapPooling",
    "Param",
    "ParamValue",
    "Pooling",
    "make_pooling",
    "pooling_class",
    "pooling_names",
    "register_pooling",
]
