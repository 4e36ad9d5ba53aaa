"""Tests for recovery: after a crash or a damaged snapshot the index matches the store."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from retrieval.index import STORE_NAME, ImageIndex, Manifest, NewImage, Store
from retrieval.index.local._snapshot import SNAPSHOT_NAME, read_snapshot

F32 = npt.NDArray[np.float32]
D = 16
REPO = Path(__file__).resolve().parents[3]

CRASHING_WRITER = """
import os, sys
import numpy as np
from retrieval.index import ImageIndex, Manifest, NewImage

path, factory, vectors = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
items = [NewImage(f"img/{i:05d}.jpg", f"{i:064x}", 64, 48) for i in range(len(vectors))]
manifest = Manifest(backbone="vgg16", weights="random:seed=0", max_side=256, pooling="gem",
                    dim=vectors.shape[1], faiss_factory=factory)
index = ImageIndex.create(path, manifest)
index.add(items[:100], vectors[:100])
index.train()  # a no-op for Flat and HNSW
index.remove([7])
index.snapshot()
index.add(items[100:150], vectors[100:150])
index.remove([3, 5, 120, 130])
os._exit(0)  # a crash: no close, no snapshot of batch B
"""


def unit_vectors(n: int, seed: int) -> F32:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def images(n: int, start: int = 0) -> list[NewImage]:
    return [NewImage(f"img/{i:05d}.jpg", f"{i:064x}", 64, 48) for i in range(start, start + n)]


def manifest(factory: str = "Flat", **changes: Any) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=256, pooling="gem",
                    dim=D, faiss_factory=factory, **changes)


def build(path: Path, n: int = 60, factory: str = "Flat") -> F32:
    xb = unit_vectors(n, 1)
    with ImageIndex.create(path, manifest(factory)) as index:
        index.add(images(n), xb)
        index.train()
    return xb


def assert_exact(path: Path, xb: F32, live: set[int]) -> None:
    """Searching every vector for k = all returns each live id exactly once (Flat)."""
    with ImageIndex.open(path) as index:
        assert index.ntotal == index.count == len(live)
        labels = index.search(xb, len(live))[1]
    for row in labels:
        assert sorted(row.tolist()) == sorted(live)


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,Flat"])
def test_crash_after_unsnapshotted_changes(tmp_path: Path, factory: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    xb = unit_vectors(150, 2)
    np.save(tmp_path / "xb.npy", xb)
    path = tmp_path / "idx"
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path), factory,
                    str(tmp_path / "xb.npy")], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    store = Store.open(path / STORE_NAME)
    assert (read_snapshot(path / SNAPSHOT_NAME).seq, store.last_seq()) == (101, 155)
    store.close()
    live = set(range(1, 151)) - {3, 5, 7, 120, 130}
    with (caplog.at_level(logging.DEBUG, logger="retrieval.index.local._recovery"),
          ImageIndex.open(path) as index):
        index.set_search_params(**({"nprobe": 4} if "IVF" in factory else {"ef_search": 256}
                                   if "HNSW" in factory else {}))
        assert index.ntotal == index.count == len(live)
        labels = index.search(xb, len(live))[1]
    assert "replayed 48 adds, 2 removes up to seq 155" in caplog.text  # caught up, not rebuilt
    assert "rebuilding" not in caplog.text
    for row in labels:
        assert len(set(row.tolist())) == len(row)  # no id indexed twice
        assert set(row.tolist()) <= live
    survivors = np.asarray(sorted(live))
    assert np.mean(labels[survivors - 1, 0] == survivors) >= 0.95
    if factory == "Flat":
        assert_exact(path, xb, live)


def test_missing_snapshot_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xb = build(tmp_path / "idx")
    (tmp_path / "idx" / SNAPSHOT_NAME).unlink()
    with caplog.at_level(logging.INFO, logger="retrieval.index.local._recovery"):
        assert_exact(tmp_path / "idx", xb, set(range(1, 61)))
    assert "missing" in caplog.text
    assert (tmp_path / "idx" / SNAPSHOT_NAME).exists()  # written again on close


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda data: b"garbage" * 50, "not a cbir snapshot"),
    (lambda data: data[:-10], "truncated or damaged"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "truncated or damaged"),
    (lambda data: data.replace(b'"version":1', b'"version":9', 1), "version 9"),
])
def test_damaged_snapshot_is_rebuilt_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any, reason: str) -> None:
    xb = build(tmp_path / "idx")
    snapshot = tmp_path / "idx" / SNAPSHOT_NAME
    snapshot.write_bytes(damage(snapshot.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="retrieval.index.local._recovery"):
        assert_exact(tmp_path / "idx", xb, set(range(1, 61)))
    assert reason in caplog.text and "rebuilding" in caplog.text


def test_snapshot_ahead_of_a_restored_store(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "idx"
    xb = build(path, n=40)
    shutil.copy(path / STORE_NAME, tmp_path / "backup.sqlite")
    with ImageIndex.open(path) as index:
        index.add(images(5, 40), unit_vectors(5, 3))
    shutil.copy(tmp_path / "backup.sqlite", path / STORE_NAME)
    with caplog.at_level(logging.WARNING, logger="retrieval.index.local._recovery"):
        assert_exact(path, xb, set(range(1, 41)))
    assert "ahead of the store" in caplog.text


def test_snapshot_of_another_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    xb = build(tmp_path / "a", n=30)
    build(tmp_path / "b", n=50)
    shutil.copy(tmp_path / "b" / SNAPSHOT_NAME, tmp_path / "a" / SNAPSHOT_NAME)
    with caplog.at_level(logging.WARNING, logger="retrieval.index.local._recovery"):
        assert_exact(tmp_path / "a", xb, set(range(1, 31)))
    assert "another store" in caplog.text


def test_trained_index_is_retrained_when_its_snapshot_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "idx"
    xb = build(path, n=200, factory="IVF8,Flat")
    (path / SNAPSHOT_NAME).unlink()
    with caplog.at_level(logging.WARNING, logger="retrieval.index.local._recovery"), \
            ImageIndex.open(path) as index:
        assert (index.is_trained, index.ntotal) == (True, 200)
        index.set_search_params(nprobe=8)
        assert np.array_equal(index.search(xb, 1)[1][:, 0], np.arange(1, 201))
    assert "retraining" in caplog.text


def test_untrained_vectors_wait_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    with ImageIndex.create(path, manifest("IVF8,Flat")) as index:
        index.add(images(100), unit_vectors(100, 4))
        index.remove([1])
    with ImageIndex.open(path) as index:
        assert (index.is_trained, index.count, index.ntotal) == (False, 99, 0)
        index.train()
        index.add(images(1, 100), unit_vectors(1, 5))
        assert (index.is_trained, index.ntotal) == (True, 100)
    with ImageIndex.open(path) as index:
        assert (index.is_trained, index.ntotal) == (True, 100)


def test_change_log_is_pruned_once_snapshotted(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    build(path, n=10)
    store = Store.open(path / STORE_NAME)
    assert (list(store.changes_since(0)), store.last_seq(), store.pruned_through()) == ([], 10, 10)
    store.close()
    with ImageIndex.open(path) as index:
        assert index.add(images(1, 10), unit_vectors(1, 6)) == [11]
    assert read_snapshot(path / SNAPSHOT_NAME).seq == 11


def test_open_removes_stale_temporaries(tmp_path: Path) -> None:
    build(tmp_path / "idx", n=5)
    stale = tmp_path / "idx" / f".{SNAPSHOT_NAME}.abc123.tmp"
    stale.write_bytes(b"half a snapshot")
    ImageIndex.open(tmp_path / "idx").close()
    assert not stale.exists()
