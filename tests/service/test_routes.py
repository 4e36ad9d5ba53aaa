"""Routes against the live server: search, records, files, thumbnails, writes, stats, metrics."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import API_KEY, AUTH, Server, jpeg


def indexed_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("img*") if p.is_file())


def test_search_finds_the_query_itself_first(client: httpx.Client, image_folder: Path) -> None:
    for path in indexed_files(image_folder)[:4]:
        response = client.post("/search", files={"image": (path.name, path.read_bytes())},
                               params={"k": 5})
        assert response.status_code == 200
        body = response.json()
        top = body["results"][0]
        assert top["path"] == path.relative_to(image_folder).as_posix()
        assert top["score"] == pytest.approx(1.0, abs=1e-4)
        assert top["url"] == f"/images/{top['id']}/file"
        assert len(body["results"]) == 5
        assert body["took_ms"] > 0


def test_record_and_file_are_served_from_the_index(client: httpx.Client,
                                                   image_folder: Path) -> None:
    path = indexed_files(image_folder)[0]
    hit = client.post("/search", files={"image": ("q", path.read_bytes())}).json()["results"][0]
    record = client.get(f"/images/{hit['id']}").json()
    assert record["path"] == path.relative_to(image_folder).as_posix()
    assert (record["width"], record["height"]) == Image.open(path).size
    served = client.get(hit["url"])
    assert served.status_code == 200
    assert served.content == path.read_bytes()
    assert served.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("size", [16, 40, 1024])
def test_thumbnail_is_a_jpeg_within_size(client: httpx.Client, size: int) -> None:
    record = client.get("/images/1").json()
    response = client.get("/images/1/file", params={"size": size})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.content))
    assert thumb.format == "JPEG"
    longer = max(record["width"], record["height"])
    assert max(thumb.size) == min(size, longer)
    assert client.get("/images/1/file", params={"size": size}).content == response.content


@pytest.mark.parametrize("size", [0, 15, 1025])
def test_thumbnail_size_out_of_range(client: httpx.Client, size: int) -> None:
    response = client.get("/images/1/file", params={"size": size})
    assert (response.status_code, response.json()["error"]) == (422, "validation_error")


def test_files_cannot_be_named_by_the_client(client: httpx.Client) -> None:
    for url in ["/images/..%2F..%2Fetc%2Fpasswd/file", "/images/1/file?path=/etc/passwd",
                "/static/../../../../etc/passwd"]:
        response = client.get(url)
        assert b"root:" not in response.content
    assert client.get("/images/1/file?path=/etc/passwd").headers["content-type"] == "image/jpeg"


def test_stats(client: httpx.Client) -> None:
    stats = client.get("/stats").json()
    assert stats["count"] >= 12
    assert stats["dimension"] == stats["manifest"]["dim"] == 512
    assert stats["random_weights"] is True
    assert stats["manifest"]["weights"].startswith("random:")
    assert stats["writes_enabled"] is True
    assert stats["index_size_bytes"] > 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {API_KEY}"},
                                     {"Authorization": f"Bearer {API_KEY}x"}])
def test_writes_need_the_key(client: httpx.Client, headers: dict[str, str]) -> None:
    added = client.post("/images", files={"images": ("a.jpg", jpeg(50))}, headers=headers)
    assert (added.status_code, added.json()["error"]) == (401, "unauthorized")
    assert added.headers["www-authenticate"] == "Bearer"
    deleted = client.delete("/images/1", headers=headers)
    assert (deleted.status_code, deleted.json()["error"]) == (401, "unauthorized")
    assert client.get("/images/1").status_code == 200


def partial_upload(server: Server, headers: dict[str, str], wait_s: float) -> bytes:
    """POST /images announcing 500 kB but sending 10 bytes; what comes back within ``wait_s``."""
    url = urlsplit(server.url)
    head = "".join(f"{k}: {v}\r\n" for k, v in {
        "Host": url.netloc, "Content-Type": "multipart/form-data; boundary=b",
        "Content-Length": "500000", **headers}.items())
    with socket.create_connection((url.hostname, url.port), timeout=wait_s) as sock:
        sock.sendall(f"POST /images HTTP/1.1\r\n{head}\r\n--b\r\nabcd".encode())
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b""


def test_the_key_is_checked_before_the_body_is_read(client: httpx.Client, live: Server) -> None:
    before = client.get("/stats").json()["count"]
    refused = partial_upload(live, {"Authorization": "Bearer wrong"}, wait_s=10)
    assert refused.startswith(b"HTTP/1.1 401"), refused[:200]
    assert partial_upload(live, AUTH, wait_s=1) == b""  # authorised: the server waits for the body
    assert client.get("/stats").json()["count"] == before  # and the abandoned upload adds nothing


def test_add_get_delete(client: httpx.Client, live: Server) -> None:
    before = client.get("/stats").json()["count"]
    files = [("images", ("a.jpg", jpeg(60))), ("images", ("b.png", png(61))),
             ("images", ("a-again.jpg", jpeg(60)))]
    response = client.post("/images", files=files, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["durable"] is True
    a, b, again = body["added"]
    assert again == {**a, "duplicate": True} and a["id"] != b["id"]
    assert (a["duplicate"], b["duplicate"]) == (False, False)
    assert b["path"] == f"{b['sha256']}.png"  # relative to the uploads folder
    assert (live.index / "data" / b["path"]).read_bytes() == png(61)
    assert client.get("/stats").json()["count"] == before + 2
    assert client.get(b["url"]).content == png(61)
    assert client.get(f"/images/{a['id']}").json() == {k: v for k, v in a.items()
                                                        if k != "duplicate"}
    deleted = client.delete(f"/images/{a['id']}", headers=AUTH)
    assert deleted.json() == {"id": a["id"], "deleted": True, "durable": True}
    assert client.get(f"/images/{a['id']}").status_code == 404
    assert client.delete(f"/images/{a['id']}", headers=AUTH).status_code == 404
    hits = client.post("/search", files={"image": ("q", jpeg(60))}).json()["results"]
    assert a["id"] not in [h["id"] for h in hits]


def test_a_bad_file_in_an_add_adds_nothing(client: httpx.Client) -> None:
    before = client.get("/stats").json()["count"]
    files = [("images", ("ok.jpg", jpeg(70))), ("images", ("bad.jpg", b"not an image"))]
    response = client.post("/images", files=files, headers=AUTH)
    assert (response.status_code, response.json()["error"]) == (415, "unsupported_image")
    assert "bad.jpg" in response.json()["detail"]
    assert client.get("/stats").json()["count"] == before


def test_metrics_count_requests_by_route(client: httpx.Client) -> None:
    client.get("/images/999999")
    text = client.get("/metrics").text
    assert 'cbir_http_requests_total{method="GET",route="/images/{image_id}",status="404"}' in text
    assert "cbir_http_request_duration_seconds_bucket{" in text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(lines["cbir_index_images"]) == client.get("/stats").json()["count"]
    assert float(lines["cbir_inference_queue_depth"]) == 0
    assert float(lines["cbir_ready"]) == 1


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
                    ).save(out, "PNG")
    return out.getvalue()
