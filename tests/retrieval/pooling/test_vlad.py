import numpy as np
import pytest
import torch

from retrieval.errors import ArtifactError, ConfigError
from retrieval.pooling._vlad import MopParams, MopVlad, local_descriptors, vlad_encode


def test_vlad_encode_by_hand() -> None:
    centroids = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    desc = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 2.0]], dtype=np.float32)
    # Residuals: centroid 0 gets (2,0)-(1,0) = (1,0); centroid 1 gets (0,2)+(0,1) = (0,3).
    # Intra-normalised: (1,0), (0,1). Signed sqrt: unchanged. L2 of (1,0,0,1): 1/sqrt(2) each.
    v = vlad_encode(desc, centroids)
    np.testing.assert_allclose(v, np.array([1, 0, 0, 1]) / np.sqrt(2), atol=1e-6)


def test_vlad_signed_sqrt_and_empty_cluster() -> None:
    centroids = np.array([[0.0, 0.0], [10.0, 10.0]], dtype=np.float32)
    desc = np.array([[0.8, -0.6]], dtype=np.float32)
    # Only centroid 0: residual (0.8, -0.6), unit already; signed sqrt -> (sqrt .8, -sqrt .6).
    v = vlad_encode(desc, centroids)
    expected = np.array([np.sqrt(0.8), -np.sqrt(0.6), 0, 0])
    np.testing.assert_allclose(v, expected / np.linalg.norm(expected), atol=1e-6)


def test_local_descriptors_windows() -> None:
    fmap = torch.rand(8, 4, 5)
    assert local_descriptors(fmap, 1).shape == (20, 8)
    assert local_descriptors(fmap, 2).shape == (12, 8)  # (4-1) * (5-1)
    assert local_descriptors(fmap, 9).shape == (2, 8)  # window clipped to 4x4
    d = local_descriptors(fmap, 2)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-5)
    first = fmap[:, :2, :2].mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(d[0], first / np.linalg.norm(first), rtol=1e-5)


def maps(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(16, 4 + i % 3, 5, generator=g) for i in range(n)]


def test_mop_fit_encode_dimensions() -> None:
    params = MopParams(k=4, regions=(2, 1), pca_dim=8)
    mop = MopVlad.fit(maps(12), params)
    assert mop.dim == 16 + 8 + 8
    out = mop.encode(torch.stack([torch.rand(16, 4, 5) for _ in range(3)]))
    assert out.shape == (3, 32)
    # Each level is unit-normalised: the squared norm of the concatenation is the level count.
    np.testing.assert_allclose((out**2).sum(axis=1), 3.0, rtol=1e-4)


def test_mop_is_deterministic_and_round_trips() -> None:
    params = MopParams(k=4, regions=(1,), pca_dim=5, seed=3)
    a, b = MopVlad.fit(maps(10), params), MopVlad.fit(maps(10), params)
    x = torch.rand(2, 16, 4, 5)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    again = MopVlad.from_arrays(params, a.to_arrays())
    np.testing.assert_array_equal(again.encode(x), a.encode(x))
    with pytest.raises(ArtifactError):
        MopVlad.from_arrays(MopParams(k=4, regions=(1, 2), pca_dim=5), a.to_arrays())


def test_mop_errors() -> None:
    with pytest.raises(ConfigError):
        MopParams(k=0)
    with pytest.raises(ConfigError):
        MopVlad.fit(maps(1), MopParams(k=2))
    with pytest.raises(ConfigError, match="fewer than k"):
        MopVlad.fit([torch.rand(16, 1, 1), torch.rand(16, 1, 1)], MopParams(k=8, regions=(1,)))
