"""Explanations: each pooling's per-cell parts sum to the pooling's own vector; the grid of a
match sums to the dot product of the two descriptors (one scale or several, with or without
whitening), and for SUM each cell's part is the closed form q · F[:, cell] / ‖v‖; on a real
(seeded, random-weight) backbone the rebuilt descriptor is the embedder's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from retrieval.errors import ConfigError
from retrieval.explain import (
    ATTRIBUTIONS,
    cell_parts,
    explain_image,
    explain_match,
    overlay_png,
    resample_sum,
    top_cells,
)
from retrieval.features import Embedder, EmbedderConfig
from retrieval.images import list_images, load_image
from retrieval.pooling import make_pooling
from retrieval.rerank import combine_scales, l2n

F32 = npt.NDArray[np.float32]
C = 12


def relu_map(seed: int, h: int = 5, w: int = 7) -> F32:
    x = np.random.default_rng(seed).standard_normal((C, h, w)).astype(np.float32)
    x[x < 0.3] = 0.0  # sparse, non-negative, as after a ReLU
    return x


@pytest.mark.parametrize("name", sorted(ATTRIBUTIONS))
def test_parts_sum_to_the_pooled_vector(name: str) -> None:
    pooling = make_pooling(name)
    fmap = relu_map(1)
    _, parts = cell_parts(pooling, fmap)
    want = pooling.encode(torch.from_numpy(fmap)[None])[0]
    assert parts.shape == fmap.shape
    assert np.allclose(parts.sum(axis=(1, 2)), want, rtol=1e-4, atol=1e-6)


def descriptor(name: str, maps: list[F32], pca: tuple[F32, F32] | None) -> F32:
    """The embedder's formula, written out: l2n per scale, summed, l2n, then whitening."""
    pooling = make_pooling(name)
    per_scale = [l2n(pooling.encode(torch.from_numpy(m)[None])) for m in maps]
    u = combine_scales(per_scale)[0]
    if pca is None:
        return u
    mean, comps = pca
    return l2n((u - mean) @ comps.T)


@pytest.mark.parametrize("name", ["sum", "gem", "max", "rmac", "crow", "spoc"])
@pytest.mark.parametrize("scales", [1, 3])
@pytest.mark.parametrize("whiten", [False, True])
def test_grid_sums_to_the_similarity(name: str, scales: int, whiten: bool) -> None:
    rng = np.random.default_rng(7)
    maps = [relu_map(2 + s, 5 + 2 * s, 7 + s) for s in range(scales)]
    pca = ((rng.standard_normal(C) * 0.01).astype(np.float32),
           rng.standard_normal((8, C)).astype(np.float32)) if whiten else None
    y = descriptor(name, maps, pca)
    partner = l2n(rng.standard_normal(y.shape))
    got = explain_match(make_pooling(name), maps, partner, whitening=pca)
    assert got.grid.shape == maps[0].shape[1:]
    assert np.allclose(got.descriptor, y, atol=1e-5)
    assert got.similarity == pytest.approx(float(partner @ y), abs=1e-5)
    assert float(got.grid.sum()) == pytest.approx(got.similarity, abs=1e-9)


def test_sum_cells_are_the_closed_form() -> None:
    fmap = relu_map(3)
    q = l2n(np.random.default_rng(0).standard_normal(C))
    got = explain_match(make_pooling("sum"), [fmap], q)
    v = fmap.sum(axis=(1, 2))
    want = np.tensordot(q, fmap, axes=(0, 0)) / np.linalg.norm(v)
    assert np.allclose(got.grid, want, atol=1e-7)
    assert got.kind == "linear"


def test_max_gives_each_channel_to_its_winning_cell() -> None:
    fmap = relu_map(4)
    q = l2n(np.random.default_rng(1).standard_normal(C))
    got = explain_match(make_pooling("max"), [fmap], q)
    v = fmap.max(axis=(1, 2))
    want = np.zeros(fmap.shape[1:])
    for c in range(C):
        i, j = np.unravel_index(np.argmax(fmap[c]), fmap.shape[1:])
        want[i, j] += q[c] * v[c] / np.linalg.norm(v)
    assert np.allclose(got.grid, want, atol=1e-7)


def test_resampling_keeps_the_total() -> None:
    g = np.random.default_rng(2).standard_normal((3, 5))
    assert np.allclose(resample_sum(g, (3, 5)), g)
    moved = resample_sum(g, (7, 4))
    assert moved.shape == (7, 4) and moved.sum() == pytest.approx(g.sum())


def test_unexplainable_poolings_and_shapes_are_refused() -> None:
    with pytest.raises(ConfigError, match="no per-cell explanation"):
        cell_parts(make_pooling("mop"), relu_map(0))
    with pytest.raises(ConfigError, match="dimensions"):
        explain_match(make_pooling("sum"), [relu_map(0)], np.ones(C + 1))


def test_top_cells_and_overlay() -> None:
    grid = np.array([[0.5, -1.0], [0.3, 0.2]])
    assert top_cells(grid, 0.5) == [(0, 0)]
    assert top_cells(grid, 0.9) == [(0, 0), (1, 0), (1, 1)]
    assert top_cells(-np.ones((2, 2))) == []
    from PIL import Image
    data = overlay_png(Image.new("RGB", (40, 30), (90, 120, 200)), grid)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("pooling", ["sum", "gem"])
def test_a_real_embedder_rebuilds_its_own_descriptor(image_folder: Path, pooling: str) -> None:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64,
                            pooling=pooling, scales=(1.0, 0.75))
    embedder = Embedder.create(config)
    paths = [p for p in list_images(image_folder) if p.name != "broken.jpg"][:2]
    images = [load_image(p) for p in paths]
    xb = embedder.embed_images(images)
    got = explain_image(embedder, images[0], xb[1])
    assert np.allclose(got.descriptor, xb[0], atol=1e-5)
    assert got.similarity == pytest.approx(float(xb[0] @ xb[1]), abs=1e-5)
