"""Part 1: indexing efficiency — ``cbir index build`` images/s ÷ the bare forward pass images/s.

Both sides see the same paris250 photographs at the same sizes (VGG16 with seeded random weights,
longer side 224: the ratio is what matters, and timing does not depend on the weights), in the
same batches (the pipeline's defaults: one image per pass on the CPU, its fastest; the bare rate
in batches of 8 is recorded too, for comparison), with the same torch threads. The build runs as
the real command line in a subprocess; its own images/s — from the first image read to the last
vector committed to SQLite and FAISS — is divided by the bare forward pass (``features(x)`` on
already decoded, normalised tensors) measured in this process just before and just after it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.images import bucketed_batches, link_folder
from bench.plan import Plan
from bench.report import PartResult, Target
from bench.shared import REPO, Missing, paris250, spread
from bench.timing import bracketed_ratios, summary
from retrieval.features import Backbone, default_batch_size, default_workers, load_backbone

__all__ = ["bare_rate", "run"]

TARGET = 0.90
_SUMMARY = re.compile(r"indexed (\d+) images in ([\d.]+) s \(([\d.]+) images/s\)")


@dataclass(frozen=True)
class BuildRun:
    """One ``cbir index build``: its own images/s and the process's wall-clock seconds."""

    images: int
    rate: float
    wall_seconds: float


@torch.inference_mode()
def bare_rate(backbone: Backbone, batches: list[torch.Tensor]) -> float:
    """Images/s of the network alone on uint8 ``batches``, normalised on the device beforehand."""
    xs = [backbone.normalize(b) for b in batches]
    cuda = backbone.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(backbone.device)
    start = time.perf_counter()
    with backbone.autocast():
        for x in xs:
            backbone.features(x)
    if cuda:
        torch.cuda.synchronize(backbone.device)
    return sum(len(x) for x in xs) / (time.perf_counter() - start)


def cli_build(images: Path, index: Path, plan: Plan, threads: int) -> BuildRun:
    """Run ``cbir index build`` (python -m indexer) and read its own images/s."""
    argv = [sys.executable, "-m", "indexer", "-q", "index", "build", "--images", str(images),
            "--index", str(index), "--backbone", "vgg16", "--weights", "random",
            "--max-side", str(plan.index_side), "--threads", str(threads), "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    match = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"cbir index build failed ({done.returncode}): {done.stderr[-2000:]}")
    return BuildRun(int(match.group(1)), float(match.group(3)), wall)


def run(plan: Plan) -> PartResult:
    result = PartResult("indexing", "indexing efficiency on the CPU (build ÷ bare forward)")
    try:
        paths = spread(paris250(), plan.index_images)
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    threads = torch.get_num_threads()
    backbone = load_backbone("vgg16", "random")
    batches = bucketed_batches(backbone, paths, plan.index_side)
    bare = [bare_rate(backbone, batches)]
    builds: list[BuildRun] = []
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as tmp:
        folder = link_folder(paths, Path(tmp) / "images")
        for i in range(plan.index_pairs):
            builds.append(cli_build(folder, Path(tmp) / f"index{i}", plan, threads))
            bare.append(bare_rate(backbone, batches))
    ratios = bracketed_ratios([b.rate for b in builds], bare)
    batched = bare_rate(backbone, bucketed_batches(backbone, paths, plan.index_side, plan.batched))
    result.figures = {
        "images": len(paths), "backbone": "vgg16 (seeded random weights)",
        "max_side": plan.index_side, "batch_size": default_batch_size(backbone),
        "torch_threads": threads, "decode_workers": default_workers(overlap=False),
        "forward_passes": len(batches),
        f"bare_forward_images_per_s_in_batches_of_{plan.batched}": round(batched, 3),
        "bare_forward_images_per_s": [round(r, 3) for r in bare],
        "build_images_per_s": [b.rate for b in builds],
        "build_wall_seconds_with_startup": [round(b.wall_seconds, 2) for b in builds],
        "efficiency_per_pair": [round(r, 4) for r in ratios], "efficiency": summary(ratios),
    }
    result.targets = [Target("indexing efficiency (build / bare forward)",
                             summary(ratios)["median"], TARGET)]
    result.notes = [f"bare forward {summary(bare)['median']:.2f} images/s, build "
                    f"{summary([b.rate for b in builds])['median']:.2f} images/s "
                    f"({len(paths)} images, {threads} threads)"]
    return result
