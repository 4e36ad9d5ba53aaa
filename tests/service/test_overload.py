"""A read-only server with one inference thread and no queue (``CBIR_WORKERS=1``,
``CBIR_QUEUE_DEPTH=0``, no ``CBIR_API_KEY``): a search arriving while another one runs is refused
at once with 503, ``Retry-After`` and the JSON error body; the write routes answer 403."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.service.conftest import AUTH, Server, ServerFactory, jpeg

BUSY_TIMEOUT_S = 30.0


def flat_png(side: int) -> bytes:
    """A side x side PNG of one colour: a few hundred kB that take a second or more to decode."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (20, 140, 90)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def tight(module_server: ServerFactory) -> Server:
    return module_server(workers="1", queue_depth="0", api_key="")


def admitted(client: httpx.Client) -> float:
    """The inference jobs running or waiting now, from /metrics."""
    text = client.get("/metrics").text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return float(values["cbir_inference_admitted"])


def search(server: Server, data: bytes, name: str = "q.jpg") -> httpx.Response:
    with server.client() as client:
        return client.post("/search", files={"image": (name, data)})


def test_a_full_queue_answers_503_with_retry_after(tight: Server) -> None:
    big = flat_png(6000)  # 36 Mpx: under the 40 Mpx default limit, slow to decode
    with tight.client() as client, ThreadPoolExecutor(1) as pool:
        slow = pool.submit(search, tight, big, "big.png")
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while admitted(client) < 1:
            assert not slow.done(), f"the slow search ended before it was seen: {slow.result()}"
            assert time.monotonic() < deadline, "the slow search was never admitted"
            time.sleep(0.01)
        refused = client.post("/search", files={"image": ("q.jpg", jpeg(5))})
        assert slow.result().status_code == 200, slow.result().text
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/json"
        body = refused.json()
        assert set(body) == {"error", "detail"} and body["error"] == "queue_full"
        assert "queue is full" in body["detail"]
        metrics = client.get("/metrics").text
        assert 'route="/search",status="503"}' in metrics
        assert admitted(client) == 0
        again = client.post("/search", files={"image": ("q.jpg", jpeg(5))})
        assert again.status_code == 200, again.text


def test_writes_are_disabled_without_a_configured_key(tight: Server) -> None:
    with tight.client() as client:
        stats = client.get("/stats").json()
        assert stats["writes_enabled"] is False
        for headers in ({}, AUTH, {"Authorization": "Bearer wrong"}):
            added = client.post("/images", files={"images": ("a.jpg", jpeg(80))},
                                headers=headers)
            assert (added.status_code, added.json()["error"]) == (403, "writes_disabled")
            deleted = client.delete("/images/1", headers=headers)
            assert (deleted.status_code, deleted.json()["error"]) == (403, "writes_disabled")
        assert client.get("/stats").json()["count"] == stats["count"]
        assert client.get("/images/1").status_code == 200
