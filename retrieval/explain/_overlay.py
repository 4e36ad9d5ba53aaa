"""A PNG of an image with the cells that contribute most to a similarity highlighted.

The grid (h, w) covers the image (the backbone's map of the resized image, cell (i, j) over
rows ``i·H/h … (i+1)·H/h`` and the columns alike). Cells with a positive part are tinted red
in proportion to it; the rest of the image is dimmed; the smallest set of cells holding
``share`` of the positive total is outlined.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

__all__ = ["overlay_png", "top_cells"]


def top_cells(grid: npt.ArrayLike, share: float = 0.5) -> list[tuple[int, int]]:
    """The fewest cells (row, column), largest first, whose positive parts reach ``share`` of
    the positive total (none when no cell is positive)."""
    g = np.asarray(grid, dtype=np.float64)
    positive = np.clip(g, 0.0, None)
    total = float(positive.sum())
    if total <= 0:
        return []
    order = np.argsort(-positive, axis=None, kind="stable")
    reached = np.cumsum(positive.reshape(-1)[order]) / total
    count = int(np.searchsorted(reached, share) + 1)
    return [(int(i // g.shape[1]), int(i % g.shape[1])) for i in order[:count]]


def overlay_png(image: Image.Image, grid: npt.ArrayLike, *, share: float = 0.5,
                max_side: int = 1024) -> bytes:
    """``image`` (cut to ``max_side``) with ``grid``'s positive cells tinted, as PNG bytes."""
    base = image.convert("RGB")
    base.thumbnail((max_side, max_side))
    g = np.asarray(grid, dtype=np.float64)
    positive = np.clip(g, 0.0, None)
    peak = float(positive.max()) if positive.size else 0.0
    heat = (positive / peak if peak > 0 else positive).astype(np.float32)
    mask = Image.fromarray((heat * 255).astype(np.uint8)).resize(base.size,
                                                                 Image.Resampling.BILINEAR)
    red = Image.new("RGB", base.size, (255, 40, 40))
    dim = Image.blend(base, Image.new("RGB", base.size, (0, 0, 0)), 0.45)
    tinted = Image.composite(Image.blend(base, red, 0.55), dim, mask)
    draw = ImageDraw.Draw(tinted)
    cell_h, cell_w = base.size[1] / g.shape[0], base.size[0] / g.shape[1]
    for i, j in top_cells(g, share):
        draw.rectangle([j * cell_w, i * cell_h, (j + 1) * cell_w - 1, (i + 1) * cell_h - 1],
                       outline=(255, 230, 0), width=2)
    out = io.BytesIO()
    tinted.save(out, format="PNG")
    return out.getvalue()
