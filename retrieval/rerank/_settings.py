"""The re-ranking settings an index stores and a search may override."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.errors import ConfigError

__all__ = ["MAX_RERANK_K", "Rerank"]

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
