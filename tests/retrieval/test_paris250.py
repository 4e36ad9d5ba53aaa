"""Retrieval quality on real photos: paris250 with the shared ImageNet SqueezeNet weights.

The shared README's plain reference implementation reaches SUM 0.814, AVE 0.814, MAX 0.762,
GeM 0.811 (max side 512); random weights give about 0.38. The index is built by the real CLI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.evaluation._benchmarks import load_benchmark
from retrieval.evaluation._metrics import evaluate
from retrieval.features._backbone import load_backbone
from retrieval.features._embedder import Embedder, EmbedderConfig
from retrieval.features._extraction import Batch, extract_batches
from retrieval.index import ImageIndex, Store

pytestmark = pytest.mark.shared


def loo_map(index_dir: Path, root: Path) -> float:
    """Leave-one-out mAP, searching every stored vector through the FAISS index."""
    bench = load_benchmark("folders", root)
    store = Store.open(index_dir / "store.sqlite")
    ids, xb = next(store.iter_all(batch=100_000))
    path_of = {int(i): r.path for i, r in zip(ids, store.get(ids.tolist()), strict=True)}
    store.close()
    position = {str(p.resolve()): n for n, p in enumerate(bench.database)}
    order = np.array([position[path_of[int(i)]] for i in ids])
    xq = np.empty_like(xb)
    xq[order] = xb
    with ImageIndex.open(index_dir) as index:
        _, found = index.search(xq, len(ids))
    rankings = [[position[path_of[int(i)]] for i in row if i >= 0] for row in found]
    return evaluate(bench.truth(), rankings=rankings).mean_ap


def test_sum_pooling_map_via_cli_index(paris250_sum_index: Path, shared: Path) -> None:
    mean_ap = loo_map(paris250_sum_index, shared / "data" / "paris250")
    assert mean_ap >= 0.78, f"paris250 SUM mAP {mean_ap:.3f} < 0.78"


MOP = {"k": 16, "pca_dim": 128}
SIDE = 384  # every pooling on real photos; the 512 px figures are the SUM index's and evaluate's


def test_every_pooling_runs_and_retrieves(shared: Path, squeezenet_weights: Path) -> None:
    root = shared / "data" / "paris250"
    bench = load_benchmark("folders", root)
    backbone = load_backbone("squeezenet1_1", str(squeezenet_weights))
    maps: dict[Path, torch.Tensor] = {}
    batches: list[Batch[Path]] = []
    for item in extract_batches(backbone, [(p, p) for p in bench.database], max_side=SIDE):
        assert isinstance(item, Batch)
        maps.update({d.key: f for d, f in zip(item.items, item.fmaps, strict=True)})
        batches.append(item)
    fmaps = [maps[p] for p in bench.database]
    order = {p: i for i, p in enumerate(bench.database)}
    results = {}
    for pooling in ("sum", "avg", "max", "gem", "mop"):
        config = EmbedderConfig(backbone="squeezenet1_1", weights=str(squeezenet_weights),
                                max_side=SIDE, pooling=pooling,
                                pooling_params=MOP if pooling == "mop" else {})
        embedder = Embedder(config, backbone)
        if config.needs_training:
            embedder.fit(fmaps[::4])  # MOP's codebook and PCA: 63 photos suffice
        x = np.zeros((len(order), embedder.dim), dtype=np.float32)
        for batch in batches:
            x[[order[d.key] for d in batch.items]] = embedder.describe_batch(batch)[0]
        results[pooling] = evaluate(bench.truth(), scores=x @ x.T).mean_ap
    assert results["sum"] == pytest.approx(results["avg"], abs=1e-6)  # identical after L2
    assert all(v > 0.6 for v in results.values()), results
