"""The one place vectors are checked and converted: float32, C-contiguous, (n, d), finite.

faiss wants exactly that and fails obscurely (or silently computes garbage from NaN) otherwise, so
the index boundary converts once with :func:`numpy.ascontiguousarray` and everything behind it
can trust its inputs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.rerank import l2n

__all__ = ["as_k", "as_matrix", "l2_normalize_rows"]

F32 = npt.NDArray[np.float32]


def as_matrix(x: npt.ArrayLike, d: int, *, name: str = "xb", n: int | None = None) -> F32:
    """``x`` as a C-contiguous float32 (n, d) matrix; :class:`ConfigError` names what is wrong."""
    a = np.asarray(x)
    if a.ndim != 2:
        hint = "; reshape a single vector with .reshape(1, -1)" if a.ndim == 1 else ""
        raise ConfigError(f"{name} must be a 2-D (n, {d}) array, got shape {a.shape}{hint}")
    if a.shape[1] != d:
        raise ConfigError(f"{name} has {a.shape[1]} columns, the index has dimension d={d}")
    if n is not None and a.shape[0] != n:
        raise ConfigError(f"{name} has {a.shape[0]} rows for {n} items")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating)
                                   or np.issubdtype(a.dtype, np.integer)):
        raise ConfigError(f"{name} must hold real numbers, got dtype {a.dtype}")
    out = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ConfigError(f"{name} contains NaN or infinite values")
    return out


def as_k(k: int) -> int:
    """A number of neighbours: a positive integer (bools refused)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)


l2_normalize_rows = l2n
"""Rows of ``x`` scaled to unit L2 norm, as float32: :func:`retrieval.rerank.l2n` itself."""
