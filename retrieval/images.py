"""Decoding untrusted image files and uploads into plain RGB images, and finding image files.

:func:`load_image` is the one door through which pixels enter cbir. It

* opens only an allowlist of formats (:data:`ALLOWED_FORMATS`), whatever the file is called, so
  PIL's rarer and less hardened decoders are never reached;
* checks the pixel count declared in the header against ``max_pixels`` *before* decoding, and
  turns PIL's own ``DecompressionBombWarning`` into a refusal, so a small file that claims to be
  100000 x 100000 is rejected without allocating anything;
* decodes fully inside the ``try`` (truncation surfaces there; ``ImageFile.LOAD_TRUNCATED_IMAGES``
  is never set and never relied on) and returns an image detached from any file;
* applies the EXIF orientation, takes the first frame of animations and multi-page TIFFs;
* converts every colour mode to 8-bit RGB (see :func:`_to_rgb` for the exact rules: transparency is
  composited onto white, 16-bit and 32-bit grey are scaled rather than clipped).

Every refusal is an :class:`~retrieval.errors.ImageDecodeError` naming the source and a reason.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from retrieval.errors import (
    ConfigError,
    ImageDecodeError,
    ImageTooLargeError,
    UnsupportedImageError,
)

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "MEDIA_TYPES",
    "Box",
    "crop_box",
    "format_suffix",
    "list_images",
    "load_image",
    "load_image_with_suffix",
    "parse_box",
    "sha256_hex",
]

log = logging.getLogger(__name__)

#: PIL's own default decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), about 89.5 megapixels.
DEFAULT_MAX_PIXELS: int = 89_478_485

#: The one table of accepted formats: PIL id -> (suffixes, the first canonical; media type).
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "JPEG": ((".jpg", ".jpeg"), "image/jpeg"),
    "PNG": ((".png",), "image/png"),
    "WEBP": ((".webp",), "image/webp"),
    "GIF": ((".gif",), "image/gif"),
    "BMP": ((".bmp",), "image/bmp"),
    "TIFF": ((".tif", ".tiff"), "image/tiff"),
}

#: PIL format ids :func:`load_image` will open (a JPEG with MPO extensions counts as JPEG).
ALLOWED_FORMATS: tuple[str, ...] = tuple(FORMATS)

#: Lower-case file suffixes :func:`list_images` collects.
IMAGE_SUFFIXES: frozenset[str] = frozenset(s for suffixes, _ in FORMATS.values() for s in suffixes)

#: Media type of each file suffix.
MEDIA_TYPES: dict[str, str] = {s: media for suffixes, media in FORMATS.values() for s in suffixes}


def format_suffix(pil_format: str | None) -> str:
    """The canonical file suffix of a PIL format id (MPO is JPEG); ``.img`` for anything else."""
    entry = FORMATS.get("JPEG" if pil_format == "MPO" else pil_format or "")
    return entry[0][0] if entry else ".img"

_NOT_SUPPORTED = "not a supported image (allowed: JPEG, PNG, WebP, GIF, BMP, TIFF)"
# Leading bytes of the allowed formats (BMP's two-byte "BM" is too weak to name a format by).
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "WebP"))
_BYTES_LABEL = "<bytes>"
_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_MODES = _SIXTEEN_BIT_MODES | {"I", "F"}
# What PIL's parsers and decoders raise on malformed input (besides OSError for truncation).
_DECODE_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode a file path or the bytes of a file into a fully loaded, EXIF-upright RGB image.

    ``name`` labels the source in errors (default: the path, or ``"<bytes>"``). Images with more
    than ``max_pixels`` pixels are refused from the header alone. PIL's global limit
    ``Image.MAX_IMAGE_PIXELS`` also applies, so the effective ceiling is the smaller of the two.
    """
    return load_image_with_suffix(source, name=name, max_pixels=max_pixels)[0]


def load_image_with_suffix(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[Image.Image, str]:
    """:func:`load_image` plus the canonical suffix of the format decoded (one decode for both)."""
    label = name if name is not None else _label(source)
    data = source if isinstance(source, bytes) else _read_file(source, label)
    if not data:
        raise ImageDecodeError(label, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            decoded, pil_format = _decode(data, label, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(label, _bomb_reason(exc, max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(label, _unidentified_reason(data)) from exc
    except _DECODE_FAILURES as exc:
        raise ImageDecodeError(label, f"truncated or corrupt image data: {exc}") from exc
    return _to_rgb(decoded, label), format_suffix(pil_format)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Every image file under ``folder``, recursively, sorted by relative POSIX path.

    A file counts when its lower-cased suffix is in :data:`IMAGE_SUFFIXES`. Hidden files and
    directories (name starting with ``.``) are skipped, and symlinked directories not followed.
    """
    root = Path(folder)
    if not root.exists():
        raise ConfigError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise ConfigError(f"image folder {str(root)!r} is not a directory")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_log_walk_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            path = Path(dirpath, filename)
            if _is_image_name(filename) and path.is_file():
                found.append(path)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


#: A region of an image: ``(x1, y1, x2, y2)`` in pixels of the upright image, x2 and y2 excluded.
Box = tuple[int, int, int, int]

_BOX = re.compile(r"\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*")


def parse_box(text: str) -> Box:
    """``"x1,y1,x2,y2"`` (integer pixels) -> a :data:`Box`; :class:`ConfigError` otherwise, also
    for an empty or inverted box (its size is checked against an image by :func:`crop_box`)."""
    match = _BOX.fullmatch(text)
    if match is None:
        raise ConfigError(f"bbox must be four integers x1,y1,x2,y2 (pixels), got {text!r}")
    x1, y1, x2, y2 = (int(v) for v in match.groups())
    if x2 <= x1 or y2 <= y1:
        raise ConfigError(f"bbox {text!r} is empty or inverted: it needs x1 < x2 and y1 < y2")
    return x1, y1, x2, y2


def crop_box(image: Image.Image, box: Box) -> Image.Image:
    """The region ``box`` of ``image`` at full resolution (the query of a region search, cut as
    a pre-cropped file would be); :class:`ConfigError` when the box is empty, inverted or not
    inside the ``width`` x ``height`` image."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ConfigError(f"bbox {x1},{y1},{x2},{y2} is empty or inverted: it needs x1 < x2 "
                          "and y1 < y2")
    if x1 < 0 or y1 < 0 or x2 > image.width or y2 > image.height:
        raise ConfigError(f"bbox {x1},{y1},{x2},{y2} is outside the {image.width} x "
                          f"{image.height} image: it needs 0 <= x1 < x2 <= {image.width} and "
                          f"0 <= y1 < y2 <= {image.height}")
    return image.crop(box)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 digest of ``data`` as 64 lower-case hex characters."""
    return hashlib.sha256(data).hexdigest()


def _label(source: str | os.PathLike[str] | bytes) -> str:
    return _BYTES_LABEL if isinstance(source, bytes) else os.fspath(source)


def _read_file(path: str | os.PathLike[str], label: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(label, f"cannot read file: {exc.strerror or exc}") from exc


def _decode(data: bytes, label: str, max_pixels: int) -> tuple[Image.Image, str | None]:
    """Open (allowlisted formats only), check the header's size, decode, orient, detach."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
        width, height = opened.size
        if width * height > max_pixels:
            reason = f"image has {width * height} pixels, more than the limit of {max_pixels}"
            raise ImageTooLargeError(label, reason)
        opened.load()
        return _upright(opened, label), opened.format


def _upright(image: Image.Image, label: str) -> Image.Image:
    """A loaded copy of ``image`` turned by its EXIF orientation; unreadable EXIF is ignored."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_FAILURES as exc:
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", label, exc)
        return image.copy()


def _unidentified_reason(data: bytes) -> str:
    """Why PIL found no allowed format: none at all, or a variant of one it cannot read."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature) and (name != "WebP" or data[8:12] == b"WEBP"):
            return (f"a {name} file whose header cannot be read (damaged, or a variant the "
                    "decoder does not support)")
    return _NOT_SUPPORTED


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    """PIL refused the size before we saw it; report it in the same words as our own check."""
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    match = re.search(r"\((\d+) pixels\)", str(exc))
    if match is None:
        return f"image is too large: {exc}"
    return f"image has {match.group(1)} pixels, more than the limit of {limit}"


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB.

    * 16-bit grey (``I;16*``) is scaled by 255/65535 and rounded (65535 -> 255, 32768 -> 128).
    * ``I`` and ``F`` go through :func:`_wide_to_grey`.
    * Alpha (``LA``, ``PA``, ``RGBA``, ...) and ``transparency`` in ``info`` (palette, grey or RGB
      colour key) are composited onto white: fully transparent pixels become (255, 255, 255).
    * ``CMYK`` (including Adobe's inverted JPEG CMYK, undone by the decoder), ``YCbCr``, ``LAB``,
      ``HSV``, ``1``, ``L``, ``P`` use PIL's conversion.
    """
    try:
        if image.mode in _WIDE_MODES:
            return _wide_to_grey(image).convert("RGB")
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            return _onto_white(image.convert("RGBA"))
        if image.mode == "RGB":  # already a detached copy (see _upright): no second copy
            return image
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageDecodeError(label, f"unsupported colour mode {image.mode}") from exc


def _onto_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _wide_to_grey(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grey image to 8 bits (mode ``L``).

    The full scale is 65535 for ``I;16*``. For ``I`` it is 255 when every value fits in 0..255,
    65535 when they fit in 0..65535 (a 16-bit image decoded as ``I`` then looks the same as one
    decoded as ``I;16``), and otherwise the image's own min..max range is stretched to 0..255.
    ``F`` is read as 0..1 when it fits there, else like ``I`` but without the 16-bit step;
    NaN and infinities become 0.
    """
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    offset, full_scale = _grey_range(image.mode, float(values.min()), float(values.max()))
    scaled = np.rint((values - offset) * (255.0 / full_scale))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def _grey_range(mode: str, lo: float, hi: float) -> tuple[float, float]:
    """(offset, full scale) so that ``(value - offset) / full_scale`` lies in 0..1."""
    if mode in _SIXTEEN_BIT_MODES:
        return 0.0, 65535.0
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if lo >= 0.0 and hi <= 255.0:
        return 0.0, 255.0
    if mode == "I" and lo >= 0.0 and hi <= 65535.0:
        return 0.0, 65535.0
    return lo, (hi - lo) or 1.0


def _is_image_name(filename: str) -> bool:
    return not filename.startswith(".") and Path(filename).suffix.lower() in IMAGE_SUFFIXES


def _log_walk_error(exc: OSError) -> None:
    log.warning("skipping unreadable directory %s: %s", exc.filename, exc.strerror or exc)
