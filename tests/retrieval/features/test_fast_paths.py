"""The fast paths give the plain path's vectors, within stated tolerances.

The plain path is one image per forward pass, fp32, contiguous NCHW (``Embedder.embed_images``, the
query path). The fast paths and what they must match it to:

* batched and size-bucketed extraction (``Embedder.extract``, what ``cbir index build`` runs),
  fp32: descriptors within 1e-5 (absolute; only the order of float sums differs);
* phased vs overlapped decoding: bit-identical feature maps (same batches, same arithmetic);
* channels_last, fp32: descriptors within 1e-5;
* bf16 autocast (on CPU here; on CUDA in production): every descriptor's cosine to the fp32 one
  at least 0.995 (bf16 keeps 8 bits of mantissa);
* on paris250, the batched path's leave-one-out mAP at most 0.005 below the per-image path's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from retrieval._collection import Collection, create_collection
from retrieval._ingest import ingest
from retrieval.errors import ConfigError, UnknownNameError
from retrieval.evaluation._benchmarks import load_benchmark
from retrieval.evaluation._metrics import evaluate
from retrieval.features._backbone import Backbone, load_backbone
from retrieval.features._embedder import Embedder, EmbedderConfig
from retrieval.features._extraction import Batch, extract_batches
from retrieval.images import list_images, load_image
from retrieval.index import ImageIndex

F32 = npt.NDArray[np.float32]
SIDE = 64
FP32_ATOL = 1e-5
BF16_MIN_COSINE = 0.995
MAP_DROP = 0.005


def embedder_on(backbone: Backbone, side: int = SIDE, weights: str = "random") -> Embedder:
    config = EmbedderConfig(backbone="squeezenet1_1", weights=weights, max_side=side)
    return Embedder(config, backbone)


def batched(embedder: Embedder, paths: list[Path], **kw: object) -> dict[Path, F32]:
    """Descriptors through the batched, bucketed extraction path, by path."""
    out: dict[Path, F32] = {}
    for item in embedder.extract([(p, p) for p in paths], **kw):  # type: ignore[arg-type]
        if isinstance(item, Batch):
            out.update(zip([d.key for d in item.items], embedder.describe_batch(item)[0],
                           strict=True))
    return out


def per_image(embedder: Embedder, paths: list[Path]) -> dict[Path, F32]:
    """Descriptors through the plain path: one image per forward pass."""
    return {p: embedder.embed_images([load_image(p)])[0] for p in paths}


@pytest.fixture(scope="module")
def images(image_folder: Path) -> list[Path]:
    return [p for p in list_images(image_folder) if p.name != "broken.jpg"]


def test_batched_bucketed_matches_per_image(images: list[Path]) -> None:
    embedder = embedder_on(load_backbone("squeezenet1_1", "random"))
    fast = batched(embedder, images, batch_size=3)
    plain = per_image(embedder, images)
    assert set(fast) == set(plain)
    for path in images:
        np.testing.assert_allclose(fast[path], plain[path], atol=FP32_ATOL, rtol=0)


def test_phased_and_overlapped_schedules_agree(images: list[Path]) -> None:
    backbone = load_backbone("squeezenet1_1", "random")
    maps = {}
    for overlap in (False, True):
        items = extract_batches(backbone, [(p, p) for p in images], max_side=SIDE,
                                batch_size=2, workers=2, overlap=overlap)
        maps[overlap] = {d.key: f for b in items if isinstance(b, Batch)
                         for d, f in zip(b.items, b.fmaps, strict=True)}
    assert maps[False].keys() == maps[True].keys() == set(images)
    for path in images:
        assert torch.equal(maps[False][path], maps[True][path])


def test_channels_last_matches_contiguous(images: list[Path]) -> None:
    plain = embedder_on(load_backbone("squeezenet1_1", "random"))
    fast = embedder_on(load_backbone("squeezenet1_1", "random", channels_last=True))
    a, b = batched(plain, images), batched(fast, images)
    for path in images:
        np.testing.assert_allclose(b[path], a[path], atol=FP32_ATOL, rtol=0)


def test_bf16_autocast_stays_close(images: list[Path]) -> None:
    plain = embedder_on(load_backbone("squeezenet1_1", "random"))
    fast = embedder_on(load_backbone("squeezenet1_1", "random", precision="bf16"))
    a, b = batched(plain, images), batched(fast, images)
    out = fast.backbone.forward(torch.zeros((1, 3, SIDE, SIDE), dtype=torch.uint8))
    assert out.dtype == torch.float32
    cosines = [float(a[p] @ b[p]) for p in images]
    assert min(cosines) >= BF16_MIN_COSINE, cosines


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="bf16, fp16, fp32"):
        load_backbone("squeezenet1_1", "random", precision="fp8")


def test_ingest_reports_progress_and_raises_store_errors(
    images: list[Path], image_folder: Path, tmp_path: Path
) -> None:
    embedder = embedder_on(load_backbone("squeezenet1_1", "random"))
    collection = create_collection(tmp_path / "index", embedder)
    sources = [(str(p), p) for p in [*images, image_folder / "group0" / "broken.jpg"]]
    seen: list[int] = []
    try:
        report = ingest(collection, sources, batch_size=2, on_progress=seen.append)
        assert sum(seen) == len(sources) and len(report.failures) == 1
        assert sorted(report.added_keys) == sorted(str(p) for p in images)
        assert collection.index.count == len(images)
    finally:
        collection.close()
    read_only = Collection(tmp_path / "index",
                           ImageIndex.open(tmp_path / "index", read_only=True), embedder)
    try:
        with pytest.raises(ConfigError, match="read-only"):
            ingest(read_only, sources[:2])
    finally:
        read_only.close()


def loo_map(vectors: dict[Path, F32], root: Path) -> float:
    bench = load_benchmark("folders", root)
    x = np.stack([vectors[p] for p in bench.database])
    return float(evaluate(bench.truth(), scores=x @ x.T).mean_ap)


@pytest.mark.shared
def test_paris250_batched_map_matches_per_image(shared: Path, squeezenet_weights: Path) -> None:
    root = shared / "data" / "paris250"
    backbone = load_backbone("squeezenet1_1", str(squeezenet_weights))
    embedder = embedder_on(backbone, side=256, weights=str(squeezenet_weights))
    paths = list_images(root)
    fast, plain = batched(embedder, paths), per_image(embedder, paths)
    assert max(float(np.abs(fast[p] - plain[p]).max()) for p in paths) <= FP32_ATOL
    fast_map, plain_map = loo_map(fast, root), loo_map(plain, root)
    assert fast_map >= plain_map - MAP_DROP, (fast_map, plain_map)
    assert plain_map > 0.7, plain_map
