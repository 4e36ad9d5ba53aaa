"""A full disk, for real (a small tmpfs holding the served index): writes answer 507
``insufficient_storage`` with ``Retry-After``, leave no half-written record or upload file behind,
and succeed again, without a restart, once space has been freed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import AUTH, ServerFactory, copy_index, jpeg
from tests.small_disk import fill, small_disk

PAGE = 4096  # tmpfs allocates whole pages


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", "16m") as folder:
        yield folder


def assert_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "insufficient_storage"
    assert "disk is full" in response.json()["detail"]
    assert int(response.headers["Retry-After"]) > 0


def stored_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_a_full_disk_answers_507_leaves_nothing_and_writes_resume(
        disk: Path, base_index: Path, start_server: ServerFactory) -> None:
    index = copy_index(base_index, disk / "index")
    server = start_server(index)
    upload = {"images": ("new.jpg", jpeg(901), "image/jpeg")}
    assert len(upload["images"][1]) <= PAGE
    uploads = index / "data"
    with server.client(headers=AUTH) as client:
        count = client.get("/stats").json()["count"]
        victim = client.get("/images/1").json()["id"]
        before = stored_files(uploads)

        filler = fill(disk)  # no room even for the upload file
        assert_full(client.post("/images", files=upload))
        assert stored_files(uploads) == before

        os.truncate(filler, filler.stat().st_size - PAGE)  # room for the file, not the commit
        assert_full(client.post("/images", files=upload))
        assert stored_files(uploads) == before
        assert "the add that stored it did not commit" in server.log.read_text()

        fill(disk)
        assert_full(client.delete(f"/images/{victim}"))
        assert client.get(f"/images/{victim}").status_code == 200
        assert client.get("/stats").json()["count"] == count

        filler.unlink()  # space freed: the same server writes again
        added = client.post("/images", files=upload)
        assert added.status_code == 201, added.text
        assert stored_files(uploads) - before == {Path(added.json()["added"][0]["path"]).name}
        assert client.delete(f"/images/{victim}").status_code == 200
        assert client.get("/stats").json()["count"] == count
        found = client.post("/search", files={"image": ("q.jpg", jpeg(901))}, params={"k": 1})
        assert found.status_code == 200
        assert found.json()["results"][0]["id"] == added.json()["added"][0]["id"]
    assert "Traceback" not in server.log.read_text()
