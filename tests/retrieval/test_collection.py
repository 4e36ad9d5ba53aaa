"""EmbedderConfig <-> manifest: the one mapping, both ways."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from retrieval import (
    Embedder,
    EmbedderConfig,
    Manifest,
    config_from_manifest,
    manifest_for,
)
from retrieval.features import load_backbone


@pytest.fixture(scope="module")
def maps() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(512, 3, 4, generator=g) for _ in range(10)]


@pytest.mark.parametrize(
    ("pooling", "params", "whiten", "scales"),
    [("sum", {}, False, (1.0,)), ("gem", {"p": 4.0}, True, (1.0, 0.5)),
     ("mop", {"k": 4, "pca_dim": 6}, False, (1.0,)), ("max", {}, True, (1.0,)),
     ("crow", {"a": 1.0}, False, (1.0, 0.707, 0.5)), ("lse", {"r": 0.2}, False, (1.0,))],
)
def test_config_survives_the_manifest(
    pooling: str, params: dict[str, object], whiten: bool, scales: tuple[float, ...],
    maps: list[torch.Tensor]
) -> None:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64,
                            pooling=pooling, pooling_params=params, whiten=whiten, seed=3,
                            scales=scales)
    embedder = Embedder(config, load_backbone("squeezenet1_1", "random", seed=3))
    if config.needs_training:
        embedder.fit(maps)
    manifest = Manifest.from_dict(manifest_for(embedder, factory="Flat",
                                               weights_file=None).to_dict())
    back = config_from_manifest(manifest)
    # whitening's fitted dimension is recorded; everything else comes back as it was
    assert back == replace(config, whiten_dim=manifest.whiten_dim)
    assert dict(manifest.pooling_params) == dict(config.pooling_params)
    assert manifest.weights == "random:seed=3" and manifest.dim == embedder.dim
    again = Embedder(back, embedder.backbone)
    if back.needs_training:
        again.fit(maps)
    # the same embedding fields (ManifestMismatchError names each one that differs)
    manifest_for(again, factory="Flat", weights_file=None).check_matches(manifest)


def test_imagenet_and_file_weights_map_back() -> None:
    base = {"backbone": "vgg16", "max_side": 512, "pooling": "sum", "dim": 512}
    assert config_from_manifest(Manifest(weights="imagenet:IMAGENET1K_V1", **base)).weights == \
        "imagenet"
    m = Manifest(weights="sha256:ab", weights_file="/w/vgg.pth", **base)
    assert config_from_manifest(m).weights == "/w/vgg.pth"
