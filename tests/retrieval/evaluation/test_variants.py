"""Every pooling variant from one map, identical to what the embedder of that variant makes."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from retrieval.errors import ConfigError, UnknownNameError
from retrieval.evaluation._variants import Variant, Variants, inner_product_scores
from retrieval.features._backbone import Backbone, load_backbone
from retrieval.features._embedder import Embedder, EmbedderConfig
from retrieval.features._extraction import Batch, Decoded

BASE = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64)
MOP = {"k": 4, "pca_dim": 6}


def batch_of(fmap: torch.Tensor) -> Batch[int]:
    """One map (C, h, w) as the embedder's batch of one image."""
    return Batch([Decoded(0, 1, 1, "", torch.zeros((3, 1, 1), dtype=torch.uint8))], fmap[None])


def configs(poolings: list[str], *, whiten: bool) -> list[EmbedderConfig]:
    return [replace(BASE, pooling=p, pooling_params=MOP if p == "mop" else {}, whiten=whiten)
            for p in poolings]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone("squeezenet1_1", "random")


@pytest.fixture(scope="module")
def maps() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(512, 3 + i % 2, 4, generator=g) for i in range(12)]


def test_variants_match_the_embedder_of_each_configuration(
    backbone: Backbone, maps: list[torch.Tensor]
) -> None:
    variants = Variants(backbone, configs(["sum", "gem", "mop"], whiten=True))
    assert variants.variants == tuple(Variant(p, w) for p in ("sum", "gem", "mop")
                                      for w in (False, True))
    variants.fit(maps[:8])
    got = variants.describe_all(iter(maps[8:]), 4)
    for pooling in ("sum", "gem", "mop"):
        for whiten in (False, True):
            config = configs([pooling], whiten=whiten)[0]
            embedder = Embedder(config, backbone)
            if config.needs_training:
                embedder.fit(maps[:8])
            expected = np.concatenate([embedder.describe_batch(batch_of(m))[0]
                                       for m in maps[8:]])
            np.testing.assert_allclose(got[Variant(pooling, whiten)], expected, atol=1e-5)
    dims = variants.dims()
    assert dims[Variant("sum")] == 512 and dims[Variant("sum", True)] == 7  # rank of 8 vectors
    assert dims[Variant("mop")] == 512 + 6 + 6


def test_missing_map_gives_a_zero_row(backbone: Backbone, maps: list[torch.Tensor]) -> None:
    got = Variants(backbone, configs(["max"], whiten=False)).describe_all([maps[0], None], 2)
    assert np.linalg.norm(got[Variant("max")][0]) == pytest.approx(1.0, abs=1e-6)
    assert not got[Variant("max")][1].any()


def test_bad_pooling_lists(backbone: Backbone) -> None:
    with pytest.raises(UnknownNameError):
        Variants(backbone, configs(["sum", "vlad"], whiten=False))
    with pytest.raises(ConfigError, match="twice"):
        Variants(backbone, configs(["sum", "sum"], whiten=False))
    with pytest.raises(ConfigError):
        Variants(backbone, configs([], whiten=False))


def test_inner_product_scores_in_chunks_equal_one_matmul() -> None:
    rng = np.random.default_rng(0)
    xq, xb = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    np.testing.assert_allclose(inner_product_scores(xq, xb, chunk=3), xq @ xb.T, rtol=1e-5)
    with pytest.raises(ConfigError):
        inner_product_scores(xq, xb[:, :4])
