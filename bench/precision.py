"""Part "precision": fp32 / bf16 / int8 on the CPU, each as a ratio to bare fp32 eager.

For VGG16 at 224 and 512 and SqueezeNet 1.1 at 512 (seeded random weights: timing does not
depend on them), on the same paris250 photographs in the pipeline's batches:

* bare forward images/s per precision (fp32 eager = today's reference; bf16 = autocast +
  channels_last; int8 = the OpenVINO engine, calibrated on the same images), interleaved;
* end-to-end ``cbir index build --precision P`` images/s (its own rate, first image read to last
  vector committed; start-up, including int8 calibration, is reported as wall seconds beside it);
* the cosine of each precision's SUM descriptor to fp32's (min over the images);
* paris250 leave-one-out mAP per precision, SUM and GeM, with the shared ImageNet SqueezeNet;
* HTTP ``POST /search`` p50 with ``CBIR_PRECISION=auto`` ÷ with fp32 (VGG16, 224).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from bench.images import bucketed_batches, link_folder
from bench.indexing import _SUMMARY, bare_rate
from bench.loadgen import search_load
from bench.plan import Plan
from bench.report import PartResult, Target
from bench.server import Service
from bench.shared import REPO, Missing, paris250, shared_root, spread
from retrieval.evaluation import evaluate, load_benchmark
from retrieval.features import (
    Backbone,
    Batch,
    Embedder,
    EmbedderConfig,
    cpu_features,
    load_backbone,
    prepare_int8,
    resolve_precision,
)

__all__ = ["run"]

PRECISIONS = ("fp32", "bf16", "int8")
CONFIGS = (("vgg16", 224), ("vgg16", 512), ("squeezenet1_1", 512))
TARGETS = {"int8": 3.0, "bf16": 1.8}


def _backbone(name: str, precision: str, paths: list[Path], side: int) -> Backbone:
    backbone = load_backbone(name, "random", precision=precision)
    if precision == "int8":
        prepare_int8(backbone, paths, max_side=side, cache_dir=None)
    return backbone


@torch.inference_mode()
def _rate(backbone: Backbone, batches: list[torch.Tensor]) -> float:
    if backbone.engine is None:
        return bare_rate(backbone, batches)
    xs = [backbone.normalize(b) for b in batches]
    start = time.perf_counter()
    for x in xs:
        backbone.engine(x)
    return sum(len(x) for x in xs) / (time.perf_counter() - start)


def _sum_vectors(backbone: Backbone, batches: list[torch.Tensor]) -> npt.NDArray[np.float32]:
    v = torch.cat([backbone.forward(b).sum(dim=(2, 3)) for b in batches]).numpy()
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def _cli_build(images: Path, index: Path, name: str, side: int,
               precision: str) -> dict[str, float]:
    argv = [sys.executable, "-m", "indexer", "-q", "index", "build", "--images", str(images),
            "--index", str(index), "--backbone", name, "--weights", "random", "--max-side",
            str(side), "--threads", str(torch.get_num_threads()), "--no-progress",
            "--precision", precision]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    match = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"cbir index build failed: {done.stderr[-2000:]}")
    return {"images_per_s": float(match.group(3)),
            "wall_s_with_startup": round(time.perf_counter() - start, 1)}


def _config_row(name: str, side: int, paths: list[Path], rounds: int) -> dict[str, object]:
    backbones = {p: _backbone(name, p, paths, side) for p in PRECISIONS}
    batches = bucketed_batches(backbones["fp32"], paths, side)
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for r in range(rounds):  # interleaved, order rotated: the machine's load drifts
        for p in PRECISIONS[r % 3:] + PRECISIONS[:r % 3]:
            rates[p].append(_rate(backbones[p], batches))
    ref = _sum_vectors(backbones["fp32"], batches)
    fp32 = float(np.median(rates["fp32"]))
    row: dict[str, object] = {"bare_fp32_eager_images_per_s": round(fp32, 3)}
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as tmp:
        folder = link_folder(paths, Path(tmp) / "images")
        for p in PRECISIONS:
            ratios = [a / b for a, b in zip(rates[p], rates["fp32"], strict=True)]
            build = _cli_build(folder, Path(tmp) / f"index-{p}", name, side, p)
            after = _rate(backbones["fp32"], batches)
            ref_rate = float(np.median([*rates["fp32"], after]))
            cos = np.sum(ref * _sum_vectors(backbones[p], batches), axis=1)
            row[p] = {"bare_ratio": round(float(np.median(ratios)), 2),
                      "bare_ratio_min_max": [round(min(ratios), 2), round(max(ratios), 2)],
                      "build_ratio": round(build["images_per_s"] / ref_rate, 2),
                      "cosine_min": round(float(cos.min()), 5), **build}
    return row


def _map_row(side: int) -> dict[str, dict[str, float]]:
    weights = shared_root() / "weights" / "squeezenet1_1_imagenet.pth"
    bench = load_benchmark("folders", shared_root() / "data" / "paris250")
    out: dict[str, dict[str, float]] = {}
    for p in PRECISIONS:
        backbone = load_backbone("squeezenet1_1", str(weights), precision=p)
        if p == "int8":
            prepare_int8(backbone, bench.database[::16], max_side=side, cache_dir=None)
        batches = [b for b in Embedder(EmbedderConfig(backbone="squeezenet1_1", max_side=side),
                                       backbone).extract(enumerate(bench.database), batch_size=1)
                   if isinstance(b, Batch)]  # one image each, in order: maps shared below
        out[p] = {}
        for pooling in ("sum", "gem"):
            config = EmbedderConfig(backbone="squeezenet1_1", max_side=side, pooling=pooling)
            embedder = Embedder(config, backbone)
            x = np.concatenate([embedder.describe_batch(b)[0] for b in batches])
            out[p][pooling] = round(evaluate(bench.truth(), scores=x @ x.T).mean_ap, 4)
    return out


def _http_ratio(plan: Plan, photos: list[Path]) -> dict[str, object]:
    from bench.latency import build_index

    config = EmbedderConfig(backbone="vgg16", weights="random", max_side=plan.index_side)
    payloads = [p.read_bytes() for p in spread(photos[1:], 6)]
    p50: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as tmp:
        index = build_index(Embedder.create(config), spread(photos, plan.latency_index_images),
                            Path(tmp) / "index")
        for p in ("fp32", "auto"):
            with Service(index, Path(tmp) / f"{p}.log", env={"CBIR_PRECISION": p}) as service:
                for payload in payloads:
                    search_load(service.url, [payload], 1, 0.0)
                load = search_load(service.url, payloads, 1, plan.latency_seconds[0])
                p50[p] = load.figures()["p50_ms"]
    auto = resolve_precision("auto", images=None)
    ratio = float(str(p50["auto"])) / float(str(p50["fp32"]))
    return {"auto_resolves_to": auto, "p50_ms": p50, "ratio_auto_over_fp32": round(ratio, 3)}


def run(plan: Plan) -> PartResult:
    result = PartResult("precision", "fp32 / bf16 / int8 on the CPU (÷ bare fp32 eager)")
    try:
        photos = paris250()
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    n, rounds = (6, 2) if plan.mode == "quick" else (16, 3)
    paths = spread(photos, n)
    rows = {f"{name}@{side}": _config_row(name, side, paths, rounds) for name, side in CONFIGS}
    map_side = 256 if plan.mode == "quick" else 512
    result.figures = {"cpu_flags": cpu_features().describe(), "images": n, "rounds": rounds,
                      "torch_threads": torch.get_num_threads(), "configs": rows,
                      "map_paris250_squeezenet_imagenet": {"max_side": map_side,
                                                           **_map_row(map_side)},
                      "http_search": _http_ratio(plan, photos)}
    vgg = rows["vgg16@224"]
    result.targets = [Target(f"{p}: cbir index build ÷ bare fp32 eager (vgg16, 224)",
                             vgg[p]["build_ratio"], t)  # type: ignore[index]
                      for p, t in TARGETS.items()]
    return result
