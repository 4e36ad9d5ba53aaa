"""``cbir duplicates`` end to end: layouts stored at ingest, groups against a brute force."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main
from retrieval import Embedder, EmbedderConfig
from retrieval.features import Batch, layout_descriptors, load_backbone
from retrieval.index import ImageIndex
from tests.conftest import scene

BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    images = tmp_path_factory.mktemp("dup-images")
    for i in range(5):
        scene(100 + i, (96, 64)).save(images / f"s{i}.png")
    scene(100, (96, 64)).save(images / "s0-copy.bmp")  # the same pixels, another file
    index = images.parent / "dup-index"
    assert main(["index", "build", "--images", str(images), "--index", str(index), *BUILD]) == 0
    return images, index


def test_ingest_stores_the_layout_of_the_same_maps(built: tuple[Path, Path]) -> None:
    _images, index_dir = built
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64,
                            pooling="sum")
    embedder = Embedder(config, load_backbone("squeezenet1_1", "random", seed=0))
    with ImageIndex.open(index_dir, read_only=True) as index:
        records = index.records(list(range(1, 7)))
        stored = index.store.layouts([r.id for r in records])
    for r in records:
        (batch,) = embedder.extract([(r.path, Path(r.path))])
        assert isinstance(batch, Batch)
        want = layout_descriptors(batch.fmaps)[0]  # the first scale's map
        np.testing.assert_allclose(stored[r.id], want.astype(np.float32), atol=2e-3)
        assert stored[r.id].shape == (512 * 16,)


def test_groups_equal_brute_force(built: tuple[Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, index_dir = built
    capsys.readouterr()
    assert main(["duplicates", "--index", str(index_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    with ImageIndex.open(index_dir, read_only=True) as index:
        ids = [r.id for r in index.records(list(range(1, 7)))]
        paths = {r.id: Path(r.path).name for r in index.records(ids)}
        xb = index.store.vectors(ids)
        lay = index.store.layouts(ids)
    want = {(a, b) for a, b in itertools.combinations(ids, 2)
            if xb[ids.index(a)] @ xb[ids.index(b)] >= np.float32(0.8)
            and lay[a] @ lay[b] >= 0.85}
    got = {(p["a"], p["b"]) for g in out["groups"] for p in g["pairs"]}
    assert got == want
    copy = {i for i, name in paths.items() if name.startswith("s0")}
    assert tuple(sorted(copy)) in got
    best = next(g for g in out["groups"] if {m["id"] for m in g["members"]} >= copy)
    assert best["score"] == pytest.approx(1.0, abs=1e-3)
    assert out["threshold"] == 0.8 and out["layout_threshold"] == 0.85


def test_text_output_and_bad_thresholds(built: tuple[Path, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, index_dir = built
    capsys.readouterr()
    assert main(["duplicates", "--index", str(index_dir), "--layout-threshold", "0.999"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("group 1: 2 images, best score 1.000") and "s0-copy.bmp" in text
    assert main(["duplicates", "--index", str(index_dir), "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err
