from pathlib import Path

import numpy as np
import pytest

from retrieval._pca import PCA
from retrieval.errors import ConfigError


def data(n: int = 400, d: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d))).astype(np.float32)


def test_whitened_output_has_identity_covariance() -> None:
    x = data()
    pca = PCA.fit(x, whiten=True)
    y = pca.apply(x).astype(np.float64)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(12), atol=1e-3)


def test_plain_pca_keeps_distances_in_full_dimension() -> None:
    x = data()
    y = PCA.fit(x).apply(x)
    dx = np.linalg.norm(x[:, None] - x[None], axis=-1)
    dy = np.linalg.norm(y[:, None] - y[None], axis=-1)
    np.testing.assert_allclose(dx, dy, rtol=1e-3, atol=1e-3)


def test_components_are_ordered_by_variance() -> None:
    y = PCA.fit(data(), 5).apply(data())
    var = y.var(axis=0)
    assert list(var) == sorted(var, reverse=True)
    assert y.shape == (400, 5)


def test_dimension_capped_at_rank() -> None:
    x = data(n=6, d=12)
    assert PCA.fit(x, 10).dim == 5
    assert PCA.fit(x).dim == 5


def test_errors() -> None:
    with pytest.raises(ConfigError):
        PCA.fit(np.zeros((1, 4)))
    with pytest.raises(ConfigError):
        PCA.fit(data(), 0)
    with pytest.raises(ConfigError):
        PCA.fit(data()).apply(np.zeros((2, 5)))


def test_rebuilt_from_its_saved_arrays_projects_identically(tmp_path: Path) -> None:
    # what the whitening persists (``state_arrays``: mean and components) is the whole PCA
    pca = PCA.fit(data(), 4, whiten=True)
    np.savez(tmp_path / "w.npz", mean=pca.mean, components=pca.components)
    with np.load(tmp_path / "w.npz") as saved:
        again = PCA(saved["mean"], saved["components"])
    np.testing.assert_array_equal(again.apply(data()), pca.apply(data()))
    assert again.dim == 4 and again.d_in == 12


def test_whitening_on_too_few_vectors_warns(caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(0).standard_normal((50, 16))
    with caplog.at_level("WARNING", logger="retrieval._pca"):
        PCA.fit(x, 8, whiten=True)
    assert "unreliable" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="retrieval._pca"):
        PCA.fit(x, 4, whiten=True)
        PCA.fit(x, 8, whiten=False)
    assert caplog.text == ""
