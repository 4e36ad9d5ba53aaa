"""Live updates: a server without a key serves the index read-only and follows what `cbir index`
commands commit; a server with a key owns the index, and the CLI's writers say so in one line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from indexer import cli
from tests.service.conftest import Server, ServerFactory, copy_index, jpeg

VISIBLE_WITHIN_S = 10.0


def hit_ids(client: httpx.Client, image: bytes) -> list[int]:
    """Ids of the 3 nearest (a hit whose record is already removed is left out)."""
    response = client.post("/search", files={"image": ("q.jpg", image)}, params={"k": 3})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def gone(image_id: int, ids: list[int]) -> bool:
    """Out of the FAISS index too: k hits come back again, none of them ``image_id``."""
    return len(ids) == 3 and image_id not in ids


def wait_for(check: Callable[[], bool]) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < VISIBLE_WITHIN_S, "not visible within 10 s"
        time.sleep(0.2)
    return time.monotonic() - start


def test_a_read_only_server_follows_cli_adds_and_removes(
        start_server: ServerFactory, base_index: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    index = copy_index(base_index, tmp_path / "followed")
    server = start_server(index, api_key="")
    new = tmp_path / "new" / "fresh.jpg"
    new.parent.mkdir()
    new.write_bytes(jpeg(900, (72, 60)))
    with server.client() as client:
        count = client.get("/stats").json()["count"]
        capsys.readouterr()
        assert cli.main(["index", "add", "--index", str(index), str(new), "--no-progress"]) == 0
        new_id = int(capsys.readouterr().out.strip().splitlines()[-1].split("\t")[0])
        added_s = wait_for(lambda: hit_ids(client, new.read_bytes())[:1] == [new_id])
        assert client.get("/stats").json()["count"] == count + 1
        assert client.get(f"/images/{new_id}/file").content == new.read_bytes()
        assert cli.main(["index", "info", "--index", str(index), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["count"] == count + 1
        assert cli.main(["index", "remove", "--index", str(index), str(new_id)]) == 0
        removed_s = wait_for(lambda: gone(new_id, hit_ids(client, new.read_bytes())))
        assert client.get(f"/images/{new_id}").status_code == 404
    print(f"add visible after {added_s:.1f} s, remove after {removed_s:.1f} s")


def test_a_writable_server_owns_the_index(live: Server,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    index = live.index
    capsys.readouterr()
    assert cli.main(["index", "remove", "--index", str(index), "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "POST /images" in err, err
    assert cli.main(["index", "info", "--index", str(index)]) == 0  # readers still work

