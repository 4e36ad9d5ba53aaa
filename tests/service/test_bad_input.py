"""Malformed (and unusual but valid) search requests against the live server, table-driven.

Each gets its documented status and JSON error body (or 200 for the supported ones), and the
server keeps serving afterwards.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import scene
from tests.service.conftest import AUTH, MAX_UPLOAD, jpeg

BOUNDARY = "cbir-test-boundary"


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG declaring width x height with one empty IDAT: a decompression bomb header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def png16() -> bytes:
    """A 16-bit greyscale PNG with values spread over 0..65535."""
    grey = scene(3, (48, 40)).convert("L").tobytes()
    raw = b"".join(struct.pack("<H", v * 257) for v in grey)
    return encode(Image.frombytes("I;16", (48, 40), raw), "PNG")


def animated_gif() -> bytes:
    frames = [scene(s, (40, 32)).convert("P") for s in (4, 5, 6)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def multipart(data: bytes, field: str = "image") -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode() + data + (
            f"\r\n--{BOUNDARY}--\r\n").encode()


def chunks(body: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def upload(data: bytes, name: str = "q.jpg", mime: str = "image/jpeg",
           **params: Any) -> dict[str, Any]:
    return {"files": {"image": (name, data, mime)}, "params": params}


GOOD = jpeg(7)
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

CASES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("zero-bytes", upload(b""), 400, "invalid_image"),
    ("text-file", upload(b"just some text\n" * 20, "notes.txt", "text/plain"), 415,
     "unsupported_image"),
    ("pdf", upload(encode(scene(1, (32, 32)), "PDF"), "doc.pdf", "application/pdf"), 415,
     "unsupported_image"),
    ("png-signature-only", upload(b"\x89PNG\r\n\x1a\n", "x.png", "image/png"), 415,
     "unsupported_image"),
    ("truncated-jpeg", upload(GOOD[: len(GOOD) // 2]), 400, "invalid_image"),
    ("png-bomb-10-gigapixels", upload(png_header_only(100_000, 100_000), "b.png", "image/png"),
     422, "image_too_large"),
    ("png-bomb-100-megapixels", upload(png_header_only(10_000, 10_000), "b.png", "image/png"),
     422, "image_too_large"),
    ("png-16-bit", upload(png16(), "deep.png", "image/png"), 200, None),
    ("cmyk-jpeg", upload(encode(scene(8, (64, 48)).convert("CMYK"), "JPEG")), 200, None),
    ("animated-gif", upload(animated_gif(), "anim.gif", "image/gif"), 200, None),
    ("declared-type-ignored", upload(encode(scene(9, (40, 40)), "PNG"), "x.bin", "text/plain"),
     200, None),
    ("not-multipart", {"content": GOOD, "headers": {"Content-Type": "image/jpeg"}}, 415,
     "unsupported_media_type"),
    ("json-body", {"json": {"image": "aGVsbG8="}}, 415, "unsupported_media_type"),
    ("oversized-body", upload(b"\xff" * (MAX_UPLOAD + 1)), 413, "body_too_large"),
    ("oversized-chunked-body", {"content": chunks(multipart(b"\xff" * (2 * MAX_UPLOAD))),
                                "headers": MULTIPART}, 413, "body_too_large"),
    ("k-zero", upload(GOOD, k=0), 422, "validation_error"),
    ("k-million", upload(GOOD, k=10**6), 422, "validation_error"),
    ("k-not-a-number", upload(GOOD, k="ten"), 422, "validation_error"),
    ("k-form-over-max", {**upload(GOOD), "data": {"k": "101"}}, 422, "validation_error"),
    ("missing-field", {"files": {"picture": ("q.jpg", GOOD, "image/jpeg")}}, 422,
     "validation_error"),
    ("image-as-text-field", {"data": {"image": "not a file"},
                             "files": {"other": ("q.jpg", GOOD, "image/jpeg")}}, 422,
     "validation_error"),
]


@pytest.mark.parametrize(("request_kwargs", "status", "error"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_search_input(client: httpx.Client, request_kwargs: dict[str, Any], status: int,
                      error: str | None) -> None:
    response = client.post("/search", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if error is None:
        scores = [hit["score"] for hit in body["results"]]
        assert len(scores) == 10
        assert scores == sorted(scores, reverse=True)
    else:
        assert set(body) == {"error", "detail"}
        assert body["error"] == error
        assert body["detail"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_16_bit_png_is_scaled_not_clipped(client: httpx.Client) -> None:
    """A 16-bit grey PNG searches exactly like the 8-bit image it was made from (v * 257)."""
    eight_bit = encode(scene(3, (48, 40)).convert("L"), "PNG")
    results = [client.post("/search", **upload(data, "g.png", "image/png")).json()["results"]
               for data in (png16(), eight_bit)]
    assert [h["id"] for h in results[0]] == [h["id"] for h in results[1]]
    assert [h["score"] for h in results[0]] == pytest.approx([h["score"] for h in results[1]],
                                                             abs=1e-5)


ADD_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("zero-bytes", {"files": {"images": ("a.jpg", b"")}}, 400, "invalid_image"),
    ("text-file", {"files": {"images": ("a.txt", b"text\n" * 20, "text/plain")}}, 415,
     "unsupported_image"),
    ("truncated-jpeg", {"files": {"images": ("a.jpg", GOOD[: len(GOOD) // 2])}}, 400,
     "invalid_image"),
    ("png-bomb", {"files": {"images": ("b.png", png_header_only(100_000, 100_000))}}, 422,
     "image_too_large"),
    ("oversized-body", {"files": {"images": ("a.jpg", b"\xff" * (MAX_UPLOAD + 1))}}, 413,
     "body_too_large"),
    ("not-multipart", {"content": GOOD, "headers": {"Content-Type": "image/jpeg"}}, 415,
     "unsupported_media_type"),
    ("missing-field", {"files": {"image": ("a.jpg", GOOD)}}, 422, "validation_error"),
]


@pytest.mark.parametrize(("request_kwargs", "status", "error"),
                         [c[1:] for c in ADD_CASES], ids=[c[0] for c in ADD_CASES])
def test_add_input(client: httpx.Client, request_kwargs: dict[str, Any], status: int,
                   error: str) -> None:
    before = client.get("/stats").json()["count"]
    kwargs = dict(request_kwargs)
    headers = {**AUTH, **kwargs.pop("headers", {})}
    response = client.post("/images", headers=headers, **kwargs)
    assert (response.status_code, response.json()["error"]) == (status, error), response.text
    assert client.get("/stats").json()["count"] == before


def test_k_form_field_is_used(client: httpx.Client) -> None:
    response = client.post("/search", **upload(GOOD), data={"k": "3"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


def test_unknown_route_and_method_are_json(client: httpx.Client) -> None:
    missing = client.get("/no/such/thing")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = client.put("/search")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"
    options = client.options("/images/1")
    assert (options.status_code, options.headers["allow"]) == (405, "DELETE, GET, PATCH")


@pytest.mark.parametrize("image_id", ["0", "-1", "abc", str(2**63), "99999", "+1", "01", "1_0",
                                      "%201", "1%20", "1.0", "0x1", "\u0661"])
def test_bad_image_ids(client: httpx.Client, image_id: str) -> None:
    expected = (404, "not_found") if image_id == "99999" else (422, "validation_error")
    for path in (f"/images/{image_id}", f"/images/{image_id}/file"):
        response = client.get(path)
        assert (response.status_code, response.json()["error"]) == expected, path
    deleted = client.delete(f"/images/{image_id}", headers=AUTH)
    assert (deleted.status_code, deleted.json()["error"]) == expected
