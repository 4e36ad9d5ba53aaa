"""The re-ranking settings an index stores and a search may override: :class:`Rerank` (αQE, DBA)
and :class:`Diffusion` (graph diffusion), each validated when made.

:class:`Diffusion` declares its parameters (:data:`DIFFUSION_PARAMS`) the way a pooling does, so
they are parsed from one spelling everywhere (``--diffusion k=30,alpha=0.95`` on the CLI,
``?diffusion=k=30,alpha=0.95`` over HTTP, the manifest's ``diffusion`` object).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retrieval.errors import ConfigError

__all__ = ["DIFFUSION_PARAMS", "MAX_RERANK_K", "Diffusion", "DiffusionParam", "Rerank"]

MAX_RERANK_K = 50


@dataclass(frozen=True)
class Rerank:
    """αQE (``qe_k`` neighbours, weights ``s^qe_alpha``) and DBA settings; k = 0 turns one off."""

    qe_k: int = 0
    qe_alpha: float = 3.0
    dba_k: int = 0
    dba_alpha: float = 3.0

    def __post_init__(self) -> None:
        for name in ("qe_k", "dba_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value <= MAX_RERANK_K:
                raise ConfigError(f"{name} must be an integer from 0 to {MAX_RERANK_K}, "
                                  f"got {value!r}")
        for name in ("qe_alpha", "dba_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value <= 100:
                raise ConfigError(f"{name} must be a number from 0 to 100, got {value!r}")


@dataclass(frozen=True)
class DiffusionParam:
    """One declared diffusion parameter: its type, inclusive bounds (``open_high``: < high) and
    what it means."""

    name: str
    kind: type[int] | type[float]
    low: float
    high: float
    help: str
    open_high: bool = False

    def parse(self, value: object) -> int | float:
        """``value`` (a number or its text) of this parameter's type, checked; else ConfigError."""
        where = f"diffusion parameter {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        if self.kind is int and not number.is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        too_high = number >= self.high if self.open_high else number > self.high
        if number < self.low or too_high:
            bound = f"below {self.high:g}" if self.open_high else f"at most {self.high:g}"
            raise ConfigError(f"{where} must be at least {self.low:g} and {bound}, "
                              f"got {value!r}")
        return int(number) if self.kind is int else number


DIFFUSION_PARAMS: tuple[DiffusionParam, ...] = (
    DiffusionParam("k", int, 1, MAX_RERANK_K,
                   "graph neighbours per node (mutual kNN: an edge needs both ends)"),
    DiffusionParam("candidates", int, 1, MAX_RERANK_K,
                   "graph neighbours read per node, the k nearest by the searched vectors "
                   "kept (at most the index's graph_k)"),
    DiffusionParam("kq", int, 1, MAX_RERANK_K, "query seeds: its nearest shortlist nodes"),
    DiffusionParam("gamma", float, 0, 100, "edge and seed weight exponent: max(s, 0)^gamma"),
    DiffusionParam("alpha", float, 0, 1, "random-walk continuation: solves (I - alpha S) f = y",
                   open_high=True),
    DiffusionParam("iterations", int, 1, 1000, "conjugate-gradient iterations at most"),
    DiffusionParam("tolerance", float, 0, 1, "stop when |r| <= tolerance |y|", open_high=True),
    DiffusionParam("hops", int, 0, 10,
                   "shortlist growth: graph hops from the first k hits"),
    DiffusionParam("shortlist", int, 1, 10_000, "at most this many nodes (CG's size)"),
)
_BY_NAME = {p.name: p for p in DIFFUSION_PARAMS}


@dataclass(frozen=True)
class Diffusion:
    """Diffusion on the mutual kNN graph of a query's shortlist (Iscen et al., CVPR 2017).

    The shortlist is the query's first ``k`` hits grown ``hops`` times through the collection's
    kept graph (capped at ``shortlist`` nodes, in the order they were reached); the graph is cut
    down to it (of each node's first ``candidates`` neighbours, the ``k`` nearest), made mutual,
    weighted ``s^gamma`` and symmetrically normalised (S); the query's ``kq`` nearest shortlist
    nodes seed ``y``; conjugate gradient solves ``(I - alpha S) f = y``.
    """

    k: int = 20
    candidates: int = 50
    kq: int = 3
    gamma: float = 3.0
    alpha: float = 0.99
    iterations: int = 20
    tolerance: float = 1e-6
    hops: int = 2
    shortlist: int = 1000

    def __post_init__(self) -> None:
        for p in DIFFUSION_PARAMS:
            object.__setattr__(self, p.name, p.parse(getattr(self, p.name)))

    def to_dict(self) -> dict[str, int | float]:
        return {p.name: getattr(self, p.name) for p in DIFFUSION_PARAMS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diffusion:
        """From a mapping of some parameters (the rest default); unknown names refused."""
        return cls(**_parsed(data))

    @classmethod
    def parse(cls, text: str, base: Diffusion | None = None) -> Diffusion | None:
        """``on`` (``base`` or the defaults), ``off`` (None) or ``name=value,...`` overriding
        ``base`` (or the defaults), e.g. ``k=30,alpha=0.95``."""
        spec = text.strip().lower()
        if spec in ("off", "none", "false", "no"):
            return None
        start = base if base is not None else cls()
        if spec in ("on", "true", "yes"):
            return start
        given: dict[str, str] = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"diffusion must be on, off or name=value pairs separated by "
                                  f"commas ({', '.join(_BY_NAME)}), got {text!r}")
            given[name.strip()] = value.strip()
        return dataclasses.replace(start, **_parsed(given))

    @property
    def label(self) -> str:
        """Short name of a non-default setting, for evaluation rows: ``diff`` or ``diff(k=30)``."""
        default = Diffusion()
        extra = ",".join(f"{p.name}={getattr(self, p.name):g}" for p in DIFFUSION_PARAMS
                         if getattr(self, p.name) != getattr(default, p.name))
        return f"diff({extra})" if extra else "diff"


def _parsed(data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown diffusion parameter(s) {', '.join(unknown)}; known: "
                          f"{', '.join(_BY_NAME)}")
    return {k: _BY_NAME[k].parse(v) for k, v in data.items()}
