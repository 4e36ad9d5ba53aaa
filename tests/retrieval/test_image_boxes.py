"""Region boxes: parsed once, refused with a sentence when empty, inverted or outside, cut at
full resolution exactly as a pre-cropped file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retrieval import ConfigError, crop_box, load_image, parse_box
from tests.conftest import scene


def test_parse_box() -> None:
    assert parse_box("1,2,30,40") == (1, 2, 30, 40)
    assert parse_box(" 0, 0 ,5,5 ") == (0, 0, 5, 5)


@pytest.mark.parametrize(("text", "reason"), [
    ("1,2,3", "four integers"), ("a,b,c,d", "four integers"), ("1.5,2,3,4", "four integers"),
    ("10,2,10,40", "empty or inverted"), ("10,2,5,40", "empty or inverted"),
    ("1,40,30,2", "empty or inverted")])
def test_bad_boxes_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_box(text)


@pytest.mark.parametrize("box", [(-1, 0, 10, 10), (0, 0, 97, 10), (0, 0, 10, 65),
                                 (5, 5, 5, 9)])
def test_boxes_outside_the_image_are_refused(box: tuple[int, int, int, int]) -> None:
    with pytest.raises(ConfigError, match=r"outside|empty"):
        crop_box(scene(0, (96, 64)), box)


def test_crop_is_the_full_resolution_region() -> None:
    image = scene(1, (96, 64))
    crop = crop_box(image, (10, 5, 96, 40))
    assert crop.size == (86, 35)
    assert np.array_equal(np.asarray(crop), np.asarray(image)[5:40, 10:96])


def test_box_is_in_pixels_of_the_upright_image() -> None:
    image = scene(2, (96, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the upright image is 64 x 96
    out = io.BytesIO()
    image.save(out, "PNG", exif=exif)
    upright = load_image(out.getvalue())
    assert upright.size == (64, 96)
    crop = crop_box(upright, (0, 50, 64, 96))
    assert np.array_equal(np.asarray(crop), np.asarray(upright)[50:96, 0:64])
    with pytest.raises(ConfigError, match="outside"):
        crop_box(upright, (0, 0, 96, 64))
