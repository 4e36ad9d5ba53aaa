"""The near-duplicate test set: 40 paris250 photos each copied once with a typical edit.

Deterministic (seeded): 8 sources per landmark folder, each of five edits used 8 times —
``resize`` 50–80 %, ``jpeg`` quality 40–70, ``crop`` 5–10 % off one border, ``brightness``
×(1 ± 0.10–0.20), ``grey``. The 250 originals are linked, unchanged, beside the 40 copies.
Exactly the 40 (original, copy) pairs are duplicates; two photos of one landmark are not.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

__all__ = ["EDITS", "make_set"]

EDITS = ("resize", "jpeg", "crop", "brightness", "grey")


def _edit(img: Image.Image, edit: str, rng: random.Random) -> tuple[Image.Image, int]:
    """The edited image and the JPEG quality to save it with."""
    if edit == "resize":
        s = rng.uniform(0.5, 0.8)
        return img.resize((round(img.width * s), round(img.height * s)),
                          Image.Resampling.LANCZOS), 90
    if edit == "jpeg":
        return img.copy(), rng.randint(40, 70)
    if edit == "crop":
        frac, side = rng.uniform(0.05, 0.10), rng.choice(["left", "right", "top", "bottom"])
        w, h = img.size
        dx, dy = round(w * frac), round(h * frac)
        box = {"left": (dx, 0, w, h), "right": (0, 0, w - dx, h),
               "top": (0, dy, w, h), "bottom": (0, 0, w, h - dy)}[side]
        return img.crop(box), 90
    if edit == "brightness":
        mag = rng.uniform(0.10, 0.20)
        factor = 1 + mag if rng.random() < 0.5 else 1 - mag
        return ImageEnhance.Brightness(img).enhance(factor), 90
    return ImageOps.grayscale(img).convert("RGB"), 90


def make_set(root: Path, out: Path, *, copies: int = 40, seed: int = 0) -> list[tuple[Path, Path]]:
    """Link every original of ``root`` under ``out`` and write the copies; returns the
    (original, copy) pairs as resolved paths."""
    rng = random.Random(seed)
    originals = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    folders = sorted({p.parent.name for p in originals})
    chosen: list[Path] = []
    for f in folders:
        chosen += rng.sample([p for p in originals if p.parent.name == f], copies // len(folders))
    edits = [EDITS[i % len(EDITS)] for i in range(len(chosen))]
    rng.shuffle(edits)
    (out / "originals").mkdir(parents=True)
    (out / "copies").mkdir()
    for p in originals:
        (out / "originals" / f"{p.parent.name}__{p.name}").symlink_to(p.resolve())
    pairs = []
    for src, edit in zip(chosen, edits, strict=True):
        with Image.open(src) as im:
            edited, quality = _edit(im.convert("RGB"), edit, rng)
        dst = out / "copies" / f"{src.stem}__{edit}.jpg"
        edited.save(dst, "JPEG", quality=quality)
        pairs.append((src.resolve(), dst.resolve()))
    return pairs
