"""Feature maps computed once and cached; query crops scaled like their full image."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.evaluation._feature_maps import FeatureMaps, MapRequest, crop_pixels, scaled_crop
from retrieval.evaluation._map_cache import FeatureCache, image_key
from retrieval.features._backbone import Backbone, load_backbone
from retrieval.images import load_image
from tests.conftest import scene


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone("squeezenet1_1", "random")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for i, size in enumerate([(128, 96), (128, 96), (96, 128), (80, 80)]):
        paths.append(root / f"p{i}.png")
        scene(i, size).save(paths[-1])
    return paths


def cache_for(root: Path, backbone: Backbone, dtype: str = "float32") -> FeatureCache:
    return FeatureCache(root, backbone=backbone.name, weights_id=backbone.weights_id,
                        max_side=64, dtype=dtype)  # type: ignore[arg-type]


# --- crop scaling ------------------------------------------------------------------------------


def test_crop_is_scaled_by_the_full_image_factor_not_to_max_side() -> None:
    # 800 x 400 image at max side 200: factor 200 / 800 = 0.25; the 400 x 160 crop -> 100 x 40
    region, size = scaled_crop(800, 400, (80.0, 40.0, 480.0, 200.0), 200)
    assert region == (80, 40, 480, 200)
    assert size == (100, 40)  # scaled to max side would have been 200 x 80


def test_crop_box_is_rounded_clamped_and_kept_at_least_min_side() -> None:
    region, size = scaled_crop(100, 50, (-5.0, 10.4, 120.0, 10.6), 100)
    assert region == (0, 10, 100, 11)
    assert size == (100, 32)  # 1 pixel high -> MIN_SIDE


def test_crop_pixels_match_a_pil_reference() -> None:
    image = scene(3, (400, 300))
    pixels = crop_pixels(image, (100.0, 60.0, 300.0, 260.0), 200)  # factor 0.5
    reference = image.crop((100, 60, 300, 260)).resize((100, 100), Image.Resampling.BILINEAR)
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (3, 100, 100)
    np.testing.assert_array_equal(pixels.permute(1, 2, 0).numpy(), np.asarray(reference))


# --- cache -------------------------------------------------------------------------------------


def test_key_changes_with_the_file_and_the_box(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    scene(0, (40, 40)).save(path)
    key = image_key(path)
    assert image_key(path) == key and image_key(path, (0, 0, 10, 10)) != key
    os.utime(path, ns=(1, 1))
    assert image_key(path) != key


def test_namespace_separates_settings(tmp_path: Path, backbone: Backbone) -> None:
    a = cache_for(tmp_path, backbone)
    b = FeatureCache(tmp_path, backbone=backbone.name, weights_id="sha256:x", max_side=64)
    c = FeatureCache(tmp_path, backbone=backbone.name, weights_id=backbone.weights_id,
                     max_side=65, dtype="float32")
    assert len({a.directory, b.directory, c.directory}) == 3
    a.put("k" * 64, torch.ones(2, 3, 4))
    assert "k" * 64 in a and "k" * 64 not in b and "k" * 64 not in c


def test_float16_roundtrip_and_overflow_kept_in_float32(tmp_path: Path, backbone: Backbone) -> None:
    cache = cache_for(tmp_path, backbone, "float16")
    fmap = torch.rand(4, 3, 2) * 100
    cache.put("a" * 64, fmap)
    got = cache.get("a" * 64)
    assert got is not None and got.dtype == torch.float32
    torch.testing.assert_close(got, fmap.half().float())
    big = torch.full((1, 2, 2), 1e6)
    cache.put("b" * 64, big)
    assert torch.equal(cache.get("b" * 64), big)  # type: ignore[arg-type]


def test_unreadable_entry_is_a_miss(tmp_path: Path, backbone: Backbone) -> None:
    cache = cache_for(tmp_path, backbone)
    cache.put("c" * 64, torch.ones(1, 1, 1))
    next(cache.directory.glob("cc/*.npy")).write_bytes(b"garbage")
    assert cache.get("c" * 64) is None
    assert "c" * 64 not in cache


# --- FeatureMaps -------------------------------------------------------------------------------


def test_each_map_is_forwarded_once_then_read_from_cache(
    tmp_path: Path, backbone: Backbone, photos: list[Path]
) -> None:
    requests = [MapRequest(p) for p in photos]
    first = FeatureMaps(backbone, cache_for(tmp_path, backbone), max_side=64)
    first.ensure(requests + requests[:2])  # duplicates are forwarded once
    assert (first.stats.forwarded, first.stats.cached) == (4, 0)
    second = FeatureMaps(backbone, cache_for(tmp_path, backbone), max_side=64)
    assert second.plan(requests) == []
    assert (second.stats.forwarded, second.stats.cached) == (0, 4)
    for path in photos:
        expected = backbone.forward(backbone.preprocess(load_image(path), 64)[None])[0]
        torch.testing.assert_close(second.get(MapRequest(path)), expected, rtol=1e-4, atol=1e-4)
    assert second.stats.forwarded == 0


def test_crop_request_maps_the_scaled_crop(
    tmp_path: Path, backbone: Backbone, photos: list[Path]
) -> None:
    maps = FeatureMaps(backbone, cache_for(tmp_path, backbone), max_side=64)
    box = (0.0, 0.0, 96.0, 72.0)  # of a 128 x 96 image: factor 0.5 -> a 48 x 36 crop
    maps.ensure([MapRequest(photos[0], box), MapRequest(photos[0])])
    assert maps.stats.forwarded == 2  # the crop is a map of its own
    pixels = crop_pixels(load_image(photos[0]), box, 64)
    assert tuple(pixels.shape) == (3, 36, 48)
    expected = backbone.forward(pixels[None])[0]
    got = maps.get(MapRequest(photos[0], box))
    assert got is not None and got.shape == expected.shape
    assert got.shape != maps.get(MapRequest(photos[0])).shape  # type: ignore[union-attr]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_unreadable_images_fail_without_stopping(
    tmp_path: Path, backbone: Backbone, photos: list[Path]
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    maps = FeatureMaps(backbone, cache_for(tmp_path, backbone), max_side=64)
    requests = [MapRequest(broken), MapRequest(tmp_path / "gone.jpg"),
                MapRequest(broken, (0, 0, 5, 5)), MapRequest(photos[3])]
    maps.ensure(requests)
    assert maps.stats.forwarded == 1 and len(maps.stats.failed) == 3
    assert [maps.get(r) is None for r in requests] == [True, True, True, False]
