"""A watcher and a keyless server, two real processes over one index: what the watcher commits
(a new file, a move, a deletion) the server answers, without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.indexer.watching import Watcher, folder_and_index, photo, wait_until
from tests.service.conftest import ServerFactory


def top_hit(client: httpx.Client, image: bytes) -> dict[str, object]:
    response = client.post("/search", files={"image": ("q.jpg", image)}, params={"k": 1})
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results[0] if results else {}


def test_a_keyless_server_answers_what_the_watcher_commits(start_server: ServerFactory,
                                                           tmp_path: Path) -> None:
    images, index = folder_and_index(tmp_path, n=5)
    server = start_server(index, api_key="")
    watcher = Watcher(images, index, tmp_path / "watch.log").start()
    try:
        with server.client() as client:
            count = client.get("/stats").json()["count"]
            saved = time.monotonic()
            new = photo(images / "arrived.jpg", 990)
            wait_until(lambda: top_hit(client, new.read_bytes()).get("path") == "arrived.jpg")
            latency = time.monotonic() - saved
            hit = top_hit(client, new.read_bytes())
            assert client.get("/stats").json()["count"] == count + 1
            assert client.get(str(hit["url"])).content == new.read_bytes()

            (images / "later").mkdir()
            new.rename(images / "later" / "arrived.jpg")
            wait_until(lambda: top_hit(client, (images / "later" / "arrived.jpg").read_bytes())
                       .get("path") == "later/arrived.jpg")
            moved = top_hit(client, (images / "later" / "arrived.jpg").read_bytes())
            assert moved["id"] == hit["id"]  # re-pointed, not embedded again
            assert client.get(str(moved["url"])).status_code == 200

            (images / "later" / "arrived.jpg").unlink()
            wait_until(lambda: client.get("/stats").json()["count"] == count)
            assert client.get(f"/images/{hit['id']}").status_code == 404
    finally:
        assert watcher.stop() == 0
    print(f"file saved -> answered by the keyless server: {latency:.2f} s")
