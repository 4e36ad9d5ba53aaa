"""Eight clients search while a ninth adds 50 images: no errors, no half-written records, and the
final count is exact. Runs on the shared live server (two inference threads, queue of 16)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.service.conftest import AUTH, Server, jpeg

SEARCHERS = 8
ADDED = 50
PER_REQUEST = 5
DEADLINE_S = 240.0


@dataclass(frozen=True)
class Searched:
    status: int
    hits: list[dict[str, Any]]
    during_add: bool


def add_all(server: Server, images: list[bytes], adding: threading.Event) -> list[int]:
    """POST the images, ``PER_REQUEST`` at a time; ``adding`` is cleared when all are in."""
    ids: list[int] = []
    try:
        with server.client() as client:
            for start in range(0, len(images), PER_REQUEST):
                files = [("images", (f"new{start + i}.jpg", data))
                         for i, data in enumerate(images[start:start + PER_REQUEST])]
                response = client.post("/images", files=files, headers=AUTH)
                assert response.status_code == 201, response.text
                ids += [record["id"] for record in response.json()["added"]]
    finally:
        adding.clear()
    return ids


def search_while(server: Server, query: bytes, adding: threading.Event) -> list[Searched]:
    """Search with ``query`` until the adds are done (and at least twice)."""
    done: list[Searched] = []
    deadline = time.monotonic() + DEADLINE_S
    with server.client() as client:
        while (adding.is_set() or len(done) < 2) and time.monotonic() < deadline:
            response = client.post("/search", files={"image": ("q.jpg", query)},
                                   params={"k": 20})
            ok = response.status_code == 200
            done.append(Searched(response.status_code, response.json()["results"] if ok else [],
                                 adding.is_set()))
    return done


@pytest.mark.slow
def test_searches_are_served_while_images_are_added(live: Server) -> None:
    images = [jpeg(5000 + i, (64, 48)) for i in range(ADDED)]
    with live.client() as client:
        before = client.get("/stats").json()["count"]
    adding = threading.Event()
    adding.set()
    with ThreadPoolExecutor(SEARCHERS + 1) as pool:
        searches = [pool.submit(search_while, live, images[i * 6], adding)
                    for i in range(SEARCHERS)]
        added = pool.submit(add_all, live, images, adding)
        ids = added.result()
        results = [s for future in searches for s in future.result()]
    assert len(ids) == len(set(ids)) == ADDED
    assert [s.status for s in results if s.status != 200] == []
    assert sum(s.during_add for s in results) >= SEARCHERS, "searches waited for the adds"
    with live.client() as client:
        stats = client.get("/stats").json()
        assert stats["count"] == stats["searchable"] == before + ADDED
        check_hits(client, results)
        for image, image_id in list(zip(images, ids, strict=True))[::10]:
            top = client.post("/search", files={"image": ("q.jpg", image)}).json()["results"][0]
            assert top["id"] == image_id and top["score"] == pytest.approx(1.0, abs=1e-4)


def check_hits(client: httpx.Client, results: list[Searched]) -> None:
    """Every hit ever returned is a whole stored record, ranked best first."""
    seen: dict[int, str] = {}
    for searched in results:
        scores = [hit["score"] for hit in searched.hits]
        assert scores == sorted(scores, reverse=True)
        for hit in searched.hits:
            assert seen.setdefault(hit["id"], hit["path"]) == hit["path"]
    for image_id, path in seen.items():
        record = client.get(f"/images/{image_id}")
        assert record.status_code == 200 and record.json()["path"] == path
