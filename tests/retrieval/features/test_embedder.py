from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.errors import ArtifactError, ConfigError, UnknownNameError
from retrieval.features._backbone import load_backbone
from retrieval.features._embedder import Embedder, EmbedderConfig
from retrieval.features._extraction import Batch, Decoded
from retrieval.features._layout import layout_descriptors
from retrieval.images import list_images, load_image
from tests.conftest import scene

NO_PIXELS = torch.zeros((3, 1, 1), dtype=torch.uint8)


@pytest.fixture(scope="module")
def maps() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(512, 3 + i % 2, 4, generator=g) for i in range(10)]


def make(**kw: object) -> Embedder:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64, **kw)  # type: ignore[arg-type]
    return Embedder(config, load_backbone("squeezenet1_1", "random"))


def batch_of(fmaps: torch.Tensor) -> Batch[int]:
    """A batch of the maps (N, C, h, w), as extraction would hand them over."""
    return Batch([Decoded(i, 1, 1, "", NO_PIXELS, position=i) for i in range(len(fmaps))], fmaps)


def describe_maps(e: Embedder, maps: list[torch.Tensor]) -> np.ndarray:
    """Descriptors of maps (C, h, w) of different sizes: a batch of one each."""
    return np.concatenate([e.describe_batch(batch_of(m[None]))[0] for m in maps])


def test_sum_descriptor_is_normalised_sum(maps: list[torch.Tensor]) -> None:
    out = describe_maps(make(pooling="sum"), maps)
    expected = np.stack([m.sum(dim=(1, 2)).numpy() for m in maps])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32 and out.flags.c_contiguous


def test_whitening_and_mop_need_fitting(maps: list[torch.Tensor]) -> None:
    e = make(pooling="gem", whiten=True)
    with pytest.raises(ConfigError, match="not fitted"):
        describe_maps(e, maps)
    e.fit(maps)
    assert e.dim == 9  # rank of 10 training vectors
    out = describe_maps(e, maps)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    blobs = e.state_blobs()
    assert set(blobs) == {"whitening.npz"}
    again = make(pooling="gem", whiten=True)
    again.load_state_blobs(blobs)
    np.testing.assert_array_equal(describe_maps(again, maps), out)


def test_mop_state_round_trip(maps: list[torch.Tensor]) -> None:
    e = make(pooling="mop", pooling_params={"k": 4, "pca_dim": 6})
    with pytest.raises(ConfigError):
        describe_maps(e, maps)
    e.fit(maps)
    assert e.dim == 512 + 6 + 6
    blobs = e.state_blobs()
    assert set(blobs) == {"mop.npz"} and make(pooling="sum").state_blobs() == {}
    again = make(pooling="mop", pooling_params={"k": 4, "pca_dim": 6})
    again.load_state_blobs(blobs)
    np.testing.assert_array_equal(describe_maps(again, maps), describe_maps(e, maps))
    with pytest.raises(ArtifactError, match=r"mop\.npz is missing"):
        make(pooling="mop").load_state_blobs({}, origin="elsewhere")
    with pytest.raises(ArtifactError, match=r"elsewhere: mop\.npz is unreadable"):
        make(pooling="mop").load_state_blobs({"mop.npz": b"not an npz"}, origin="elsewhere")


def test_describe_batch_gives_vectors_and_layouts_in_batch_order(
        maps: list[torch.Tensor]) -> None:
    e = make(pooling="gem")
    fmaps = torch.stack([m for m in maps if m.shape[1] == 3])
    vectors, layouts = e.describe_batch(batch_of(fmaps))
    np.testing.assert_allclose(vectors, describe_maps(e, list(fmaps)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layouts, layout_descriptors(fmaps))
    assert vectors.dtype == np.float32 and layouts.dtype == np.float16


def test_embed_images_equals_describe_of_forward(image_folder: Path) -> None:
    e = make(pooling="max")
    images = [load_image(p) for p in list_images(image_folder) if p.name != "broken.jpg"][:3]
    out = e.embed_images(images)
    assert out.shape == (3, 512)
    fmap = e.backbone.forward(e.backbone.preprocess(images[1], 64)[None])
    single = e.describe_batch(batch_of(fmap))[0]
    np.testing.assert_array_equal(out[1], single[0])  # the query path is this, bit for bit
    assert not np.allclose(e.embed_images([scene(99, (64, 64))]), out[0])
    assert e.embed_images([]).shape == (0, 512)


def test_multiscale_query_equals_extracted_batch(image_folder: Path) -> None:
    e = make(pooling="gem", scales=(1.0, 0.75))
    paths = [p for p in list_images(image_folder) if p.name != "broken.jpg"][:3]
    extracted = {}
    for item in e.extract([(p, p) for p in paths], batch_size=1):
        assert isinstance(item, Batch) and len(item.extra) == 1
        extracted[item.items[0].key] = e.describe_batch(item)[0][0]
    queries = e.embed_images([load_image(p) for p in paths])
    for p, q in zip(paths, queries, strict=True):
        np.testing.assert_array_equal(extracted[p], q)


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
