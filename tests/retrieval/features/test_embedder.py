from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.errors import ArtifactError, ConfigError, UnknownNameError
from retrieval.features._backbone import load_backbone
from retrieval.features._embedder import Embedder, EmbedderConfig
from retrieval.images import list_images, load_image
from tests.conftest import scene


@pytest.fixture(scope="module")
def maps() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(512, 3 + i % 2, 4, generator=g) for i in range(10)]


def make(**kw: object) -> Embedder:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64, **kw)  # type: ignore[arg-type]
    return Embedder(config, load_backbone("squeezenet1_1", "random"))


def test_sum_descriptor_is_normalised_sum(maps: list[torch.Tensor]) -> None:
    out = make(pooling="sum").describe_maps(maps)
    expected = np.stack([m.sum(dim=(1, 2)).numpy() for m in maps])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32 and out.flags.c_contiguous


def test_whitening_and_mop_need_fitting(maps: list[torch.Tensor], tmp_path: Path) -> None:
    e = make(pooling="gem", whiten=True)
    with pytest.raises(ConfigError, match="not fitted"):
        e.describe_maps(maps)
    e.fit(maps)
    assert e.dim == 9  # rank of 10 training vectors
    out = e.describe_maps(maps)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    e.save_state(tmp_path)
    again = make(pooling="gem", whiten=True)
    again.load_state(tmp_path)
    np.testing.assert_array_equal(again.describe_maps(maps), out)


def test_mop_state_round_trip(maps: list[torch.Tensor], tmp_path: Path) -> None:
    e = make(pooling="mop", pooling_params={"k": 4, "pca_dim": 6})
    with pytest.raises(ConfigError):
        e.describe_maps(maps)
    e.fit(maps)
    assert e.dim == 512 + 6 + 6
    e.save_state(tmp_path)
    again = make(pooling="mop", pooling_params={"k": 4, "pca_dim": 6})
    again.load_state(tmp_path)
    np.testing.assert_array_equal(again.describe_maps(maps), e.describe_maps(maps))
    with pytest.raises(ArtifactError):
        make(pooling="mop").load_state(tmp_path / "elsewhere")


def test_embed_images_equals_describe_of_forward(image_folder: Path) -> None:
    e = make(pooling="max")
    images = [load_image(p) for p in list_images(image_folder) if p.name != "broken.jpg"][:3]
    out = e.embed(images)
    assert out.shape == (3, 512)
    single = e.describe(e.backbone.forward(e.backbone.preprocess(images[1], 64)[None]))
    np.testing.assert_allclose(out[1], single[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(e.embed([scene(99, (64, 64))]), out[0])


def test_config_validation() -> None:
    with pytest.raises(UnknownNameError):
        EmbedderConfig(pooling="median")
    with pytest.raises(UnknownNameError):
        EmbedderConfig(backbone="alexnet")
    with pytest.raises(ConfigError):
        EmbedderConfig(max_side=8)
    assert EmbedderConfig().image_side == 1024
    assert dict(EmbedderConfig(pooling="gem", pooling_params={"p": 4}).pooling_params) == {"p": 4}
    assert dict(EmbedderConfig(pooling="gem").pooling_params) == {"p": 3.0}
    assert EmbedderConfig(pooling="gem") == EmbedderConfig(pooling="gem", pooling_params={"p": 3})
    with pytest.raises(ConfigError, match="no parameter"):
        EmbedderConfig(pooling="sum", pooling_params={"p": 4})
