"""Fitted state (MOP/VLAD codebooks, PCA-whitening) as ``<step>.npz`` files in an index."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from retrieval._atomic import write_atomic
from retrieval.errors import ConfigError

__all__ = ["STATE_SUFFIX", "read_state_files", "write_state_files"]

STATE_SUFFIX = ".npz"


def read_state_files(directory: Path) -> dict[str, bytes]:
    """The fitted-state files (``*.npz``) of an index directory, by file name."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).glob(f"*{STATE_SUFFIX}"))}


def write_state_files(directory: Path, blobs: Mapping[str, bytes]) -> None:
    """Write each blob atomically as ``directory/<name>``; names must be ``<step>.npz``."""
    for name, data in blobs.items():
        if Path(name).name != name or not name.endswith(STATE_SUFFIX):
            raise ConfigError(f"fitted state must be named <step>{STATE_SUFFIX}, got {name!r}")
        write_atomic(Path(directory) / name, data)
