"""The benchmark's image inputs: a folder of links to shared photos, and pre-decoded batches."""

from __future__ import annotations

from pathlib import Path

import torch

from retrieval.features import Backbone, Batch, extract_batches

__all__ = ["bucketed_batches", "link_folder"]


def link_folder(paths: list[Path], folder: Path) -> Path:
    """A folder of symbolic links to ``paths`` (nothing is copied), listed in the same order."""
    folder.mkdir(parents=True)
    for i, path in enumerate(paths):
        (folder / f"{i:04d}_{path.name}").symlink_to(path.resolve())
    return folder


def bucketed_batches(backbone: Backbone, paths: list[Path], max_side: int,
                     batch_size: int | None = None) -> list[torch.Tensor]:
    """The uint8 batches the pipeline forms from ``paths`` (same sizes, same grouping; the
    pipeline's default batch size when ``batch_size`` is None).

    Running the pipeline once to get them also warms the network up for every shape.
    """
    batches: list[torch.Tensor] = []
    for item in extract_batches(backbone, [(str(p), p) for p in paths], max_side=max_side,
                                batch_size=batch_size):
        if isinstance(item, Batch):
            batches.append(torch.stack([d.pixels for d in item.items]))
    return batches
