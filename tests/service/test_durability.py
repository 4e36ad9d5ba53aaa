"""An acknowledged add or delete survives ``kill -9`` right after the response, and a restart."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.service.conftest import AUTH, ServerFactory, jpeg


def search_ids(client: httpx.Client, image: bytes, k: int = 20) -> list[int]:
    response = client.post("/search", files={"image": ("q.jpg", image)}, params={"k": k})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def test_add_and_delete_survive_kill_9(start_server: ServerFactory, image_folder: Path) -> None:
    server = start_server()
    new_image = jpeg(123, (72, 56))
    old_path = sorted(image_folder.rglob("img*.jpg"))[0]
    with server.client() as client:
        old_id = search_ids(client, old_path.read_bytes())[0]
        count = client.get("/stats").json()["count"]
        added = client.post("/images", files={"images": ("new.jpg", new_image)}, headers=AUTH)
        assert added.status_code == 201 and added.json()["durable"] is True
        new_id = added.json()["added"][0]["id"]
        deleted = client.delete(f"/images/{old_id}", headers=AUTH)
        assert deleted.status_code == 200 and deleted.json()["durable"] is True
    server.kill9()  # no shutdown hook runs: no snapshot, nothing flushed but what was committed

    restarted = start_server(server.index)
    with restarted.client() as client:
        assert client.get("/stats").json()["count"] == count
        assert search_ids(client, new_image)[0] == new_id
        assert old_id not in search_ids(client, old_path.read_bytes(), k=100)
        assert client.get(f"/images/{old_id}").status_code == 404
        assert client.get(f"/images/{new_id}/file").content == new_image
