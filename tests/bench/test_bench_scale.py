import faiss
import numpy as np
import pytest

from bench.scale import Measured, Setting, index_bytes, recommend
from bench.vectors import clustered, exact_neighbours, recall_at


def test_clustered_vectors_are_seeded_and_normalised() -> None:
    a, b = clustered(1000, 32, seed=3), clustered(1000, 32, seed=3)
    assert a.shape == (1000, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert not np.array_equal(a, clustered(1000, 32, seed=4))


def test_recall_against_exact_search() -> None:
    x = clustered(500, 16, seed=0)
    truth = exact_neighbours(x[:400], x[400:], 5)
    assert recall_at(truth, truth) == 1.0
    shifted = np.roll(truth, 1, axis=0)
    assert recall_at(shifted, truth) < 0.5


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "IVF16,PQ8", "HNSW8"])
def test_index_bytes_match_the_serialised_size(factory: str) -> None:
    x = clustered(2000, 32, seed=1)
    index = faiss.index_factory(32, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add(x)
    serialised = len(faiss.serialize_index(index))
    assert abs(index_bytes(index) - serialised) <= 0.02 * serialised


def test_recommend_prefers_flat_then_the_fastest_qualifying() -> None:
    slow_flat = Measured("Flat", 0.1, 200.0, [Setting("exact", 1.0, 20.0)])
    ivf = Measured("IVF1024,Flat", 9.0, 210.0, [Setting("nprobe=1", 0.90, 0.1),
                                                 Setting("nprobe=8", 0.97, 0.9)])
    hnsw = Measured("HNSW32", 30.0, 230.0, [Setting("efSearch=16", 0.96, 0.4)])
    best = recommend([slow_flat, ivf, hnsw])
    assert best is not None and (best["factory"], best["search"]) == ("HNSW32", "efSearch=16")
    fast_flat = Measured("Flat", 0.1, 20.0, [Setting("exact", 1.0, 2.0)])
    best = recommend([fast_flat, hnsw])
    assert best is not None and best["factory"] == "Flat"
    assert recommend([slow_flat]) is None
