"""Row L2-normalisation and scale combination: the one ``l2n`` of the library.

Norms are computed in float64 and floored at ``eps`` (a zero row stays zero); the result is
float32, the dtype every descriptor and indexed vector has.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["combine_scales", "l2n"]

F32 = npt.NDArray[np.float32]


def l2n(x: npt.ArrayLike, eps: float = 1e-12) -> F32:
    """Rows (the last axis) of ``x`` scaled to unit L2 norm, as float32; zero rows stay zero."""
    a = np.asarray(x, dtype=np.float64)
    out: F32 = (a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), eps)).astype(np.float32)
    return out


def combine_scales(per_scale: Sequence[npt.ArrayLike]) -> F32:
    """(n, d) L2-normalised vectors of the same images at each scale -> ``l2n(Σ_s v_s)``.

    One scale is returned as it is (as float32): the sum of one unit vector is that vector.
    """
    if not per_scale:
        raise ValueError("combine_scales needs at least one scale")
    if len(per_scale) == 1:
        one = per_scale[0]
        if isinstance(one, np.ndarray) and one.dtype == np.float32:
            return one
        return np.asarray(one, dtype=np.float32)
    return l2n(np.sum([np.asarray(v, dtype=np.float64) for v in per_scale], axis=0))
