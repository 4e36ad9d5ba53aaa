"""Part 5: against a peer — a plain per-image extraction loop ÷ our pipeline, on paris250.

The reference loop is the way most public CBIR code extracts descriptors: open each file with
PIL, apply torchvision transforms (resize, ToTensor, Normalize), run the network on one image at
a time in fp32, sum-pool and L2-normalise. It uses the same network (torchvision SqueezeNet 1.1
with the shared ImageNet weights), the same sizes (longer side 512) and the same threads, so both
produce the same vectors (checked below) and only the pipeline differs: ours decodes in threads
between forward passes and batches by size where that pays (``retrieval.features``). Both
run on each chunk of the images in turn, alternating which goes first; the speed-up is the median
over chunks of ours ÷ theirs (shared machines drift; adjacent runs compare fairly). On a CUDA
machine the comparison is repeated there, ours with bf16 autocast and channels_last.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import models
from torchvision import transforms as T

from bench.plan import Plan
from bench.report import PartResult
from bench.shared import Missing, paris250, shared_root, spread, squeezenet_weights
from bench.vectors import F32
from retrieval.evaluation import evaluate, load_benchmark
from retrieval.features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Batch,
    Embedder,
    EmbedderConfig,
    resized_shape,
)

__all__ = ["reference_loop", "run"]



def reference_features(weights: Path, device: str) -> nn.Module:
    """SqueezeNet 1.1's ``features``, loaded the plain torchvision way."""
    model = models.squeezenet1_1(weights=None)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    features: nn.Module = model.features.to(device).eval()
    return features


def reference_loop(features: nn.Module, paths: list[Path], side: int, device: str) -> F32:
    """One image at a time: PIL decode, torchvision transforms, fp32 forward, SUM, L2."""
    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    rows = []
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB")
            width, height = resized_shape(image.width, image.height, side)
            transform = T.Compose([T.Resize((height, width)), T.ToTensor(), normalize])
            fmap = features(transform(image).unsqueeze(0).to(device))
            vector = fmap.sum(dim=(2, 3))[0]
            rows.append((vector / vector.norm()).cpu().numpy())
    return np.stack(rows).astype(np.float32)


def our_pipeline(embedder: Embedder, paths: list[Path]) -> F32:
    """Our extraction path (the one ``cbir index build`` runs), descriptors in input order."""
    out = np.zeros((len(paths), embedder.dim), dtype=np.float32)
    for item in embedder.extract(list(enumerate(paths))):
        if isinstance(item, Batch):
            out[[d.key for d in item.items]] = embedder.describe_batch(item)[0]
    return out


@dataclass(frozen=True)
class Comparison:
    """The plain loop against our pipeline on one device, chunk by chunk."""

    device: str
    precision: str
    reference_images_per_s: list[float]
    ours_images_per_s: list[float]
    speedup_per_chunk: list[float]
    speedup: float  # the median of the chunks'
    min_cosine_ours_vs_reference: float
    map_ours: float | None
    map_reference: float | None


def _timed(fn: Callable[[], F32]) -> tuple[float, F32]:
    start = time.perf_counter()
    vectors = fn()
    return time.perf_counter() - start, vectors


def mean_ap(paths: list[Path], x: F32) -> float | None:
    """Leave-one-out mAP by folder (the shared README's protocol), for the full set only."""
    bench = load_benchmark("folders", shared_root() / "data" / "paris250")
    if len(paths) != len(bench.database):
        return None
    row = {p.resolve(): i for i, p in enumerate(paths)}
    ordered = x[[row[p.resolve()] for p in bench.database]]
    return float(evaluate(bench.truth(), scores=ordered @ ordered.T).mean_ap)


def compare(plan: Plan, paths: list[Path], device: str, precision: str) -> Comparison:
    """Both extractions on each chunk of ``paths`` in turn, alternating which goes first."""
    weights = squeezenet_weights()
    config = EmbedderConfig(backbone="squeezenet1_1", weights=str(weights),
                            max_side=plan.peer_side, pooling="sum")
    embedder = Embedder.create(config, device=device, precision=precision,
                               channels_last=device != "cpu")
    features = reference_features(weights, device)
    our_pipeline(embedder, paths[:8])  # warm both up, so neither pays for first calls
    reference_loop(features, paths[:8], plan.peer_side, device)
    size = -(-len(paths) // plan.peer_chunks)
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    plain, ours, rates = [], [], []
    for i, chunk in enumerate(chunks):
        runs = [lambda c=chunk: reference_loop(features, c, plan.peer_side, device),
                lambda c=chunk: our_pipeline(embedder, c)]
        timed = [_timed(fn) for fn in (runs if i % 2 == 0 else runs[::-1])]
        (t_ref, x_ref), (t_ours, x_ours) = timed if i % 2 == 0 else timed[::-1]
        plain.append(x_ref)
        ours.append(x_ours)
        rates.append((len(chunk) / t_ref, len(chunk) / t_ours))
    x_plain, x_ours = np.concatenate(plain), np.concatenate(ours)
    speedups = [o / r for r, o in rates]
    return Comparison(
        device, precision, [round(r, 3) for r, _ in rates], [round(o, 3) for _, o in rates],
        [round(x, 4) for x in speedups], round(statistics.median(speedups), 4),
        round(float(np.sum(x_ours * x_plain, axis=1).min()), 6),
        mean_ap(paths, x_ours), mean_ap(paths, x_plain))


def run(plan: Plan) -> PartResult:
    result = PartResult("peer", "speed-up over a plain per-image extraction loop (paris250)")
    try:
        paths = spread(paris250(), plan.peer_images)
        squeezenet_weights()
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    cpu = compare(plan, paths, "cpu", "fp32")
    result.figures = {"images": len(paths), "max_side": plan.peer_side, "backbone":
                      "squeezenet1_1 (shared ImageNet weights)", "pooling": "sum",
                      "torch_threads": torch.get_num_threads(), "cpu": asdict(cpu)}
    result.notes.append(f"CPU speed-up (ours / plain loop): {cpu.speedup:.3f} (the issue sets no "
                        "target; above 1 means faster)")
    if torch.cuda.is_available():
        gpu = compare(plan, paths, "cuda", "bf16")
        result.figures["cuda"] = asdict(gpu)
        result.notes.append(f"CUDA speed-up (ours / plain loop): {gpu.speedup:.3f}")
    else:
        result.notes.append("CUDA comparison skipped: no CUDA device here")
    result.notes.append(f"CPU: plain loop {statistics.median(cpu.reference_images_per_s):.2f} "
                        f"images/s, ours {statistics.median(cpu.ours_images_per_s):.2f} images/s "
                        f"(medians); mAP ours {cpu.map_ours}, plain {cpu.map_reference}; min "
                        f"cosine {cpu.min_cosine_ours_vs_reference}")
    return result
