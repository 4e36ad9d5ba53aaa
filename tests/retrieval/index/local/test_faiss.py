"""Tests for faiss: how ids attach to each FAISS type, removal and tombstones."""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from retrieval.errors import ArtifactError, ConfigError
from retrieval.index.local import VectorIndex

F32 = npt.NDArray[np.float32]
D = 16


def unit_vectors(n: int, seed: int) -> F32:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def filled(factory: str, n: int = 300) -> tuple[VectorIndex, F32, npt.NDArray[np.int64]]:
    index = VectorIndex.new(D, factory, "inner_product")
    xb = unit_vectors(n, 0)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    if not index.is_trained:
        index.train(xb)
    index.add(ids, xb)
    return index, xb, ids


def brute_force(xb: F32, ids: npt.NDArray[np.int64], xq: F32, k: int) -> npt.NDArray[np.int64]:
    return ids[np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :k]]


@pytest.mark.parametrize(("factory", "removable"), [
    ("Flat", True), ("IVF8,Flat", True), ("PCA8,IVF4,Flat", True), ("SQ8", True),
    ("HNSW16", False), ("NSG16,Flat", False)])
def test_removal_support(factory: str, removable: bool) -> None:
    assert VectorIndex.new(D, factory, "inner_product").removable is removable


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat", "HNSW16", "NSG16,Flat"])
def test_removed_ids_are_never_returned(factory: str) -> None:
    index, xb, ids = filled(factory)
    index.set_search_params({"nprobe": 8} if "IVF" in factory else {})
    gone = ids[::3]
    index.remove(gone.tolist())
    assert index.ntotal == len(ids) - len(gone)
    keep = np.setdiff1d(ids, gone)
    distances, labels = index.search(xb, 10)
    assert not set(gone.tolist()) & set(labels.ravel().tolist())
    expected = brute_force(xb[keep - 1000], keep, xb, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, expected, strict=True)])
    assert overlap >= (1.0 if factory in ("Flat", "IVF8,Flat") else 0.9)
    assert np.all(np.diff(distances, axis=1) <= 1e-6)  # best first


def test_tombstone_filter_without_selector_support_pads() -> None:
    index, xb, ids = filled("NSG16,Flat", n=150)  # NSG ignores id selectors: over-fetch, filter
    index.remove(ids[:145].tolist())
    distances, labels = index.search(xb[:3], 8)
    assert set(labels[:, :5].ravel().tolist()) == set(ids[145:].tolist())
    assert np.all(labels[:, 5:] == -1) and np.all(distances[:, 5:] == -np.inf)
    assert index.needs_compaction
    index.reset()
    assert (index.ntotal, index.tombstones) == (0, frozenset())


def test_ivf_takes_ids_natively_and_survives_serialization() -> None:
    index, xb, ids = filled("IVF8,Flat")
    index.set_search_params({"nprobe": 8})
    again = VectorIndex.from_bytes(index.to_bytes(), d=D, factory="IVF8,Flat",
                                   metric="inner_product")
    assert isinstance(faiss.deserialize_index(np.frombuffer(index.to_bytes(), np.uint8)),
                      faiss.IndexIVFFlat)
    assert np.array_equal(again.search(xb, 5)[1], index.search(xb, 5)[1])
    assert np.array_equal(index.search(xb, 1)[1][:, 0], ids)


def test_from_bytes_checks_dimension_and_metric() -> None:
    data = filled("Flat", n=5)[0].to_bytes()
    with pytest.raises(ArtifactError, match="d=16"):
        VectorIndex.from_bytes(data, d=32, factory="Flat", metric="inner_product")
    with pytest.raises(ArtifactError, match="expected d=16, l2"):
        VectorIndex.from_bytes(data, d=D, factory="Flat", metric="l2")


def test_l2_metric_pads_with_infinity() -> None:
    index = VectorIndex.new(D, "Flat", "l2")
    index.add(np.array([5], dtype=np.int64), unit_vectors(1, 1))
    distances, labels = index.search(unit_vectors(1, 1), 2)
    assert labels.tolist() == [[5, -1]] and distances[0, 0] == pytest.approx(0, abs=1e-6)
    assert distances[0, 1] == np.inf


def test_min_training_points() -> None:
    assert VectorIndex.new(D, "Flat", "inner_product").min_training_points() == 0
    assert VectorIndex.new(D, "IVF32,Flat", "inner_product").min_training_points() == 32
    assert VectorIndex.new(D, "IVF8,PQ4", "inner_product").min_training_points() == 256
    with pytest.raises(ConfigError, match="train"):
        VectorIndex.new(D, "IVF32,Flat", "inner_product").train(unit_vectors(10, 2))


def test_untrained_add_and_bad_search_params() -> None:
    index = VectorIndex.new(D, "IVF8,Flat", "inner_product")
    with pytest.raises(ArtifactError, match="not trained"):
        index.add(np.array([1], dtype=np.int64), unit_vectors(1, 3))
    with pytest.raises(ConfigError, match="nprobe"):
        VectorIndex.new(D, "Flat", "inner_product").set_search_params({"nprobe": 4})
