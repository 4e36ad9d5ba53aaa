"""Part 2: indexing on a GPU — the pipeline end to end ÷ the bare forward pass, on CUDA.

Skipped, with a message, where torch sees no CUDA device. Otherwise, for longer sides 224 and
1024: VGG16 (seeded random weights) under bf16 autocast with channels_last; real paris250 JPEG
files read from disk (repeated to ``plan.gpu_images``) go through the library's extraction path
(overlapped: the decode threads work while the GPU computes) plus pooling; the bare forward pass
runs on the same batches already on the GPU. Target: pipeline ÷ bare >= 0.70.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.images import bucketed_batches
from bench.indexing import bare_rate
from bench.plan import Plan
from bench.report import PartResult, Target
from bench.shared import Missing, paris250
from retrieval.features import Batch, Embedder, EmbedderConfig, load_backbone

__all__ = ["run"]

TARGET = 0.70
SIDES = {224: 64, 1024: 16}  # longer side -> batch size


def pipeline_rate(embedder: Embedder, paths: list[Path], batch_size: int) -> float:
    """Images/s from JPEG files to pooled descriptors on the CPU."""
    sources = [(i, p) for i, p in enumerate(paths)]
    start = time.perf_counter()
    n = 0
    for item in embedder.extract(sources, batch_size=batch_size):
        if isinstance(item, Batch):
            embedder.describe_batch(item)
            n += len(item.items)
    return n / (time.perf_counter() - start)


def measure(side: int, batch_size: int, paths: list[Path]) -> dict[str, float]:
    config = EmbedderConfig(backbone="vgg16", weights="random", max_side=side)
    embedder = Embedder.create(config, device="cuda", precision="bf16", channels_last=True)
    # the bare forward runs on a backbone of its own: the embedder's is the embedder's business
    backbone = load_backbone(config.backbone, config.weights, device="cuda", seed=config.seed,
                             precision="bf16", channels_last=True)
    sample = paths[: max(batch_size * 8, 64)]
    batches = [b.to("cuda") for b in bucketed_batches(backbone, sample, side, batch_size)]
    bare = [bare_rate(backbone, batches)]
    rate = pipeline_rate(embedder, paths, batch_size)
    bare.append(bare_rate(backbone, batches))
    ratio = rate / (sum(bare) / 2)
    return {"max_side": side, "batch_size": batch_size, "images": len(paths),
            "bare_images_per_s": round(sum(bare) / 2, 1), "pipeline_images_per_s": round(rate, 1),
            "ratio": round(ratio, 4)}


def run(plan: Plan) -> PartResult:
    result = PartResult("gpu", "indexing on CUDA (pipeline ÷ bare forward, bf16, channels_last)")
    if not torch.cuda.is_available():
        result.status = "skipped"
        result.reason = "no CUDA device (torch.cuda.is_available() is False)"
        return result
    try:
        photos = paris250()
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    paths = [photos[i % len(photos)] for i in range(plan.gpu_images)]
    rows = [measure(side, batch, paths) for side, batch in SIDES.items()]
    result.figures = {"device": torch.cuda.get_device_name(0), "backbone": "vgg16 (random)",
                      "precision": "bf16", "channels_last": True, "runs": rows}
    result.targets = [Target(f"pipeline / bare at {r['max_side']}", r["ratio"], TARGET)
                      for r in rows]
    result.notes = [f"{r['max_side']}: bare {r['bare_images_per_s']} images/s, pipeline "
                    f"{r['pipeline_images_per_s']} images/s" for r in rows]
    return result
