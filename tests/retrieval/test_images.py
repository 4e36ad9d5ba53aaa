"""Tests for retrieval.images: decoding untrusted files into RGB, and listing image folders."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageFile, features

from retrieval.errors import (
    ConfigError,
    ImageDecodeError,
    ImageTooLargeError,
    UnsupportedImageError,
)
from retrieval.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    list_images,
    load_image,
    sha256_hex,
)

WHITE = (255, 255, 255)
NOT_SUPPORTED = "not a supported image (allowed: JPEG, PNG, WebP, GIF, BMP, TIFF)"


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def grey16(mode: str, values: list[int]) -> Image.Image:
    """A 1-row 16-bit grey image of ``values``, built from raw bytes so nothing is clipped."""
    order = ">" if mode == "I;16B" else "<"
    raw = np.array([values], dtype=f"{order}u2").tobytes()
    return Image.frombytes(mode, (len(values), 1), raw)


def wide(mode: str, values: list[float]) -> Image.Image:
    dtype = np.float32 if mode == "F" else np.int32
    return Image.fromarray(np.array([values], dtype=dtype))


def palette_with_transparency() -> Image.Image:
    """Two palette pixels: index 0 red (opaque), index 1 blue (the transparent index)."""
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1])
    image.info["transparency"] = 1
    return image


def row(mode: str, pixels: list[Any]) -> Image.Image:
    image = Image.new(mode, (len(pixels), 1))
    image.putdata(pixels)
    return image


def row_with_key(mode: str, pixels: list[Any], key: Any) -> Image.Image:
    image = row(mode, pixels)
    image.info["transparency"] = key
    return image


def first_row(image: Image.Image) -> list[tuple[int, int, int]]:
    return [image.getpixel((x, 0)) for x in range(image.width)]  # type: ignore[misc]


# (case id, source image, format, expected RGB pixels of the first row)
MODE_CASES: list[tuple[str, Callable[[], Image.Image], str, list[tuple[int, int, int]]]] = [
    ("RGB-BMP", lambda: row("RGB", [(200, 10, 20), (1, 2, 3)]), "BMP", [(200, 10, 20), (1, 2, 3)]),
    ("1-BMP", lambda: row("1", [0, 255]), "BMP", [(0, 0, 0), WHITE]),
    ("L-PNG", lambda: row("L", [77, 0]), "PNG", [(77, 77, 77), (0, 0, 0)]),
    ("LA-PNG", lambda: row("LA", [(10, 0), (10, 255)]), "PNG", [WHITE, (10, 10, 10)]),
    ("LA-TIFF", lambda: row("LA", [(10, 0), (10, 255)]), "TIFF", [WHITE, (10, 10, 10)]),
    (
        "RGBA-PNG",
        lambda: row("RGBA", [(200, 10, 20, 0), (200, 10, 20, 255)]),
        "PNG",
        [WHITE, (200, 10, 20)],
    ),
    ("P-transparency-PNG", palette_with_transparency, "PNG", [(255, 0, 0), WHITE]),
    ("P-transparency-GIF", palette_with_transparency, "GIF", [(255, 0, 0), WHITE]),
    ("L-colour-key-PNG", lambda: row_with_key("L", [50, 60], 50), "PNG", [WHITE, (60, 60, 60)]),
    (
        "RGB-colour-key-PNG",
        lambda: row_with_key("RGB", [(1, 2, 3), (4, 5, 6)], (1, 2, 3)),
        "PNG",
        [WHITE, (4, 5, 6)],
    ),
    (
        "I;16-PNG",
        lambda: grey16("I;16", [65535, 32768, 0, 257]),
        "PNG",
        [WHITE, (128, 128, 128), (0, 0, 0), (1, 1, 1)],
    ),
    (
        "I;16-TIFF",
        lambda: grey16("I;16", [65535, 32768, 0, 257]),
        "TIFF",
        [WHITE, (128, 128, 128), (0, 0, 0), (1, 1, 1)],
    ),
    (
        "I;16B-TIFF",
        lambda: grey16("I;16B", [65535, 32768, 0, 257]),
        "TIFF",
        [WHITE, (128, 128, 128), (0, 0, 0), (1, 1, 1)],
    ),
    ("I-8bit-TIFF", lambda: wide("I", [0, 77, 255]), "TIFF", [(0, 0, 0), (77, 77, 77), WHITE]),
    ("I-16bit-TIFF", lambda: wide("I", [65535, 32768]), "TIFF", [WHITE, (128, 128, 128)]),
    (
        "I-stretched-TIFF",
        lambda: wide("I", [-1000, 0, 1000]),
        "TIFF",
        [(0, 0, 0), (128,) * 3, WHITE],
    ),
    (
        "F-unit-TIFF",
        lambda: wide("F", [0.0, 0.5, 1.0]),
        "TIFF",
        [(0, 0, 0), (128, 128, 128), WHITE],
    ),
    (
        "F-8bit-TIFF",
        lambda: wide("F", [0.0, 77.0, 200.0]),
        "TIFF",
        [(0, 0, 0), (77,) * 3, (200,) * 3],
    ),
    ("CMYK-JPEG-white", lambda: Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", [WHITE] * 8),
    ("CMYK-JPEG-black", lambda: Image.new("CMYK", (8, 8), (0, 0, 0, 255)), "JPEG", [(0, 0, 0)] * 8),
    ("CMYK-TIFF-white", lambda: Image.new("CMYK", (2, 1), (0, 0, 0, 0)), "TIFF", [WHITE] * 2),
    (
        "CMYK-TIFF-colours",
        lambda: row("CMYK", [(255, 0, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]),
        "TIFF",
        [(0, 255, 255), (255, 255, 0), (0, 0, 0)],
    ),
]


@pytest.mark.parametrize(
    ("make", "fmt", "expected"),
    [case[1:] for case in MODE_CASES],
    ids=[case[0] for case in MODE_CASES],
)
def test_each_mode_converts_to_expected_rgb(
    make: Callable[[], Image.Image], fmt: str, expected: list[tuple[int, int, int]]
) -> None:
    image = load_image(encode(make(), fmt))
    assert image.mode == "RGB"
    assert first_row(image)[: len(expected)] == expected


def test_alpha_blends_half_transparent_black_into_grey() -> None:
    image = load_image(encode(row("LA", [(0, 128)]), "PNG"))
    # black at alpha 128/255 over white: 255 * (1 - 128/255) = 127, within PIL's rounding
    assert abs(image.getpixel((0, 0))[0] - 127) <= 1  # type: ignore[index]


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_lossless_alpha_composited_onto_white() -> None:
    data = encode(row("RGBA", [(200, 10, 20, 0), (200, 10, 20, 255)]), "WEBP", lossless=True)
    assert first_row(load_image(data)) == [WHITE, (200, 10, 20)]


def two_tone_jpeg(orientation: int) -> bytes:
    """40x20: left half red, right half blue, tagged with an EXIF orientation."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def is_red(pixel: Any) -> bool:
    return bool(pixel[0] > 200 and pixel[2] < 60)


@pytest.mark.parametrize(
    ("orientation", "size", "red_at"),
    [
        (1, (40, 20), (5, 10)),  # untouched: red on the left
        (6, (20, 40), (10, 5)),  # rotate 90 degrees clockwise: left half becomes the top
        (8, (20, 40), (10, 35)),  # rotate 90 degrees anticlockwise: left half becomes the bottom
        (3, (40, 20), (35, 10)),  # rotate 180 degrees: red on the right
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, size: tuple[int, int], red_at: tuple[int, int]
) -> None:
    image = load_image(two_tone_jpeg(orientation))
    assert image.size == size
    assert is_red(image.getpixel(red_at))
    opposite = (size[0] - 1 - red_at[0], size[1] - 1 - red_at[1])
    assert not is_red(image.getpixel(opposite))


@pytest.mark.parametrize("filename", ["photo.jpg", "photo.dat", "photo", "photo.gif"])
def test_format_is_sniffed_not_taken_from_extension(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(encode(row("RGB", [(9, 8, 7)]), "PNG"))
    assert first_row(load_image(path)) == [(9, 8, 7)]
    assert first_row(load_image(str(path))) == [(9, 8, 7)]


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "PCX", "TGA", "SGI"])
def test_formats_outside_allowlist_are_refused(tmp_path: Path, fmt: str) -> None:
    data = encode(Image.new("RGB", (16, 16), (1, 2, 3)), fmt)
    Image.open(io.BytesIO(data)).load()  # PIL itself would happily decode it
    path = tmp_path / "disguised.png"
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    assert info.value.reason == NOT_SUPPORTED
    assert info.value.source == str(path)


def test_pdf_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="not a supported image"):
        load_image(encode(Image.new("RGB", (16, 16)), "PDF"))


def noisy_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def png_header_only(width: int, height: int) -> bytes:
    """A syntactically valid PNG that declares width x height but holds one empty IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


UNREADABLE_HEADER = "file whose header cannot be read (damaged, or a variant the decoder"


@pytest.mark.parametrize(
    ("data", "kind", "reason"),
    [
        (b"", ImageDecodeError, "empty file"),
        (b"hello, this is text\n" * 10, UnsupportedImageError, NOT_SUPPORTED),
        (b"\x89PNG\r\n\x1a\n", UnsupportedImageError, f"a PNG {UNREADABLE_HEADER}"),
        (b"II*\x00" + bytes(40), UnsupportedImageError, f"a TIFF {UNREADABLE_HEADER}"),
        (b"RIFF\x10\x00\x00\x00WEBPXXXX" + bytes(20), UnsupportedImageError,
         f"a WebP {UNREADABLE_HEADER}"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", UnsupportedImageError, NOT_SUPPORTED),
        (noisy_jpeg()[: len(noisy_jpeg()) // 2], ImageDecodeError,
         "truncated or corrupt image data: "),
        (encode(row("RGB", [(1, 2, 3)] * 500), "PNG")[:-30], ImageDecodeError,
         "truncated or corrupt image data: "),
        # beyond twice PIL's limit: DecompressionBombError raised while opening
        (png_header_only(100_000, 100_000), ImageTooLargeError,
         "image has 10000000000 pixels, more than the limit"),
        # between PIL's limit and twice it: DecompressionBombWarning, turned into an error
        (png_header_only(10_000, 10_000), ImageTooLargeError,
         "image has 100000000 pixels, more than the limit"),
    ],
    ids=["empty", "text", "png-signature-only", "tiff-signature-only", "webp-bad-chunk",
         "riff-not-webp",
         "jpeg-cut-in-half", "png-cut", "huge", "big"],
)
def test_bad_input_is_refused_with_reason(
    data: bytes, kind: type[ImageDecodeError], reason: str
) -> None:
    with pytest.raises(ImageDecodeError) as info:
        load_image(data)
    assert type(info.value) is kind
    assert info.value.reason.startswith(reason)
    assert info.value.source == "<bytes>"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_pixel_limit_is_inclusive_on_a_normal_image() -> None:
    data = encode(Image.new("RGB", (100, 50), (4, 5, 6)), "PNG")
    assert load_image(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(ImageDecodeError) as info:
        load_image(data, max_pixels=4999)
    assert info.value.reason == "image has 5000 pixels, more than the limit of 4999"


def test_small_limit_rejects_a_huge_header_before_decoding() -> None:
    with pytest.raises(ImageDecodeError) as info:
        load_image(png_header_only(3_000, 3_000), max_pixels=1_000_000)
    assert info.value.reason == "image has 9000000 pixels, more than the limit of 1000000"


def test_animated_gif_gives_first_frame() -> None:
    frames = [
        Image.new("RGB", (8, 8), colour) for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    ]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(data)).n_frames == 3  # type: ignore[attr-defined]
    image = load_image(data)
    assert image.size == (8, 8)
    assert np.all(np.asarray(image) == [255, 0, 0])


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty file") as info:
        load_image(path)
    assert info.value.source == str(path)
    assert str(path) in str(info.value)


def test_name_overrides_the_label(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError) as info:
        load_image(b"not an image", name="upload.jpg")
    assert info.value.source == "upload.jpg"
    assert str(info.value) == f"upload.jpg: {NOT_SUPPORTED}"


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.png"
    with pytest.raises(ImageDecodeError, match="cannot read file") as info:
        load_image(path)
    assert info.value.source == str(path)


def test_result_is_loaded_and_detached_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode(Image.new("RGB", (3, 3), (7, 7, 7)), "PNG"))
    image = load_image(path)
    path.unlink()
    assert not isinstance(image, ImageFile.ImageFile)
    assert getattr(image, "fp", None) is None
    assert image.getpixel((2, 2)) == (7, 7, 7)


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6), st.just(3))))
def test_rgb_png_round_trips_exactly(pixels: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
    image = load_image(encode(Image.fromarray(pixels), "PNG"))
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_sha256_hex_known_vectors() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_list_images_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "b.jpg", "a/z.jpg", "A.JPG", "a.jpeg", "sub/deeper/c.TIFF", "sub/d.Png", "e.webp",
        "f.gif", "g.bmp", "h.tif", "notes.txt", "noext", "photo.jpg.bak", ".hidden.jpg",
        ".git/x.jpg", "sub/.cache/y.png", "dir.jpg/inside.png",
    )  # fmt: skip
    found = list_images(tmp_path)
    assert all(path.parent == tmp_path or tmp_path in path.parents for path in found)
    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "A.JPG",
        "a.jpeg",
        "a/z.jpg",
        "b.jpg",
        "dir.jpg/inside.png",
        "e.webp",
        "f.gif",
        "g.bmp",
        "h.tif",
        "sub/d.Png",
        "sub/deeper/c.TIFF",
    ]


def test_list_images_sorts_by_relative_posix_path(tmp_path: Path) -> None:
    touch(tmp_path, "a.b/x.png", "a/x.png", "a.png", "a0.png")
    relative = [path.relative_to(tmp_path).as_posix() for path in list_images(str(tmp_path))]
    assert relative == ["a.b/x.png", "a.png", "a/x.png", "a0.png"]  # '.' < '/' < '0'


def test_list_images_empty_folder(tmp_path: Path) -> None:
    assert list_images(tmp_path) == []


def test_list_images_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"nowhere.*does not exist"):
        list_images(missing)


def test_list_images_file_is_not_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "one.jpg"
    touch(tmp_path, "one.jpg")
    with pytest.raises(ConfigError, match=r"one\.jpg.*not a directory"):
        list_images(path)


def test_default_limit_is_pils_default() -> None:
    assert DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS == 89_478_485


def test_image_suffixes_are_lower_case_with_dot() -> None:
    assert all(suffix == suffix.lower() and suffix.startswith(".") for suffix in IMAGE_SUFFIXES)
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} == IMAGE_SUFFIXES
