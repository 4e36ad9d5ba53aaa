"""Where the benchmarks find the shared data: ``$CBIR_SHARED``, by default ``../shared``.

Nothing here is ever copied into the repository; parts that need it skip with a reason instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from retrieval import list_images

__all__ = ["REPO", "Missing", "paris250", "shared_root", "spread", "squeezenet_weights"]

REPO = Path(__file__).resolve().parents[1]


class Missing(Exception):
    """Shared data a part needs is absent; the message says what and where."""


def shared_root() -> Path:
    return Path(os.environ.get("CBIR_SHARED", REPO.parent / "shared")).resolve()


def paris250() -> list[Path]:
    """The 250 paris250 photographs, in a stable order."""
    root = shared_root() / "data" / "paris250"
    if not root.is_dir():
        raise Missing(f"paris250 not found at {root} (set CBIR_SHARED)")
    return list_images(root)


def spread(paths: list[Path], n: int) -> list[Path]:
    """``n`` paths taken evenly across ``paths`` (every landmark, not just the first)."""
    if n >= len(paths):
        return list(paths)
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def squeezenet_weights() -> Path:
    path = shared_root() / "weights" / "squeezenet1_1_imagenet.pth"
    if not path.is_file():
        raise Missing(f"SqueezeNet weights not found at {path} (set CBIR_SHARED)")
    return path
