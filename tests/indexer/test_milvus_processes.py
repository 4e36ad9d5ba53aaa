"""A Milvus Lite-backed index used as a user would: every command in a new process.

``cbir index build`` creates it; then ``index info``, ``search``, ``index add``, ``index remove``
and ``python -m service`` each open it from a process of their own (Milvus Lite hands a reopened
database's collections back *released*: opening must load them). A Milvus that cannot be reached
or opened is one ``cbir: error:`` line and a non-zero exit, never a traceback. On the session's
Milvus server, an index whose collections were released (as a restarted server leaves them until
it has loaded them) opens from a new process too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, scene
from tests.service.conftest import API_KEY, AUTH, BUILD, Server, free_port, jpeg

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")


def cbir(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    return subprocess.run([sys.executable, "-m", "indexer", "-q", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def ok(*args: str | Path) -> str:
    done = cbir(*args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def built(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("milvus_processes")
    done = cbir("index", "build", "--images", image_folder, "--index", root / "index", *BUILD,
                "--store", "milvus", "--milvus-uri", root / "m.db", "--collection", "c")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "AllocTimestamp" not in done.stderr, done.stderr
    return root / "index"


def info(index: Path) -> dict[str, object]:
    out: dict[str, object] = json.loads(ok("index", "info", "--index", index, "--json"))
    return out


def top(index: Path, query: Path, k: int = 3) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(
        ok("search", "--index", index, query, "-k", str(k), "--json"))["results"]
    return found


def test_every_command_reopens_the_index(built: Path, tmp_path: Path) -> None:
    assert info(built)["count"] == 12          # the 12 images (the broken file is skipped)
    new = tmp_path / "new.jpg"
    scene(4242, (72, 72)).save(new, quality=90)
    added = ok("index", "add", "--index", built, new).splitlines()[-1].split("\t")
    new_id = int(added[0])
    assert added[1] == str(new.resolve())
    assert top(built, new)[0] == {"id": new_id, "path": str(new.resolve()),
                                  "score": pytest.approx(1, abs=1e-4), "tags": [],
                                  "folder": None}  # outside the indexed folder

    assert "removed 1" in ok("index", "remove", "--index", built, str(new_id))
    assert info(built)["count"] == 12
    assert all(h["id"] != new_id for h in top(built, new, k=20))


def test_the_service_reopens_the_index(built: Path, tmp_path: Path) -> None:
    server = Server(built, tmp_path / "server.log", {"CBIR_API_KEY": API_KEY}).start()
    try:
        with server.client() as client:
            assert client.get("/stats").json()["count"] == 12
            upload = {"images": ("served.jpg", jpeg(777, (72, 72)), "image/jpeg")}
            added = client.post("/images", files=upload, headers=AUTH)
            assert added.status_code == 201, added.text
            new_id = added.json()["added"][0]["id"]
            query = {"image": ("q.jpg", jpeg(777, (72, 72)), "image/jpeg")}
            hit = client.post("/search?k=1", files=query).json()["results"][0]
            assert hit["id"] == new_id and hit["score"] == pytest.approx(1, abs=1e-4)
            assert client.delete(f"/images/{new_id}", headers=AUTH).status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()
    assert info(built)["count"] == 12


def pointing_at(built: Path, dest: Path, uri: str) -> Path:
    """A copy of the index directory whose manifest names another Milvus URI."""
    dest.mkdir()
    for f in built.iterdir():
        if f.is_file():
            (dest / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    manifest["store"]["uri"] = uri
    (dest / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return dest


def test_a_dead_server_is_one_line(built: Path, tmp_path: Path) -> None:
    index = pointing_at(built, tmp_path / "dead", f"http://127.0.0.1:{free_port()}")
    done = cbir("index", "info", "--index", index)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("cbir: error: cannot reach Milvus at http://127.0.0.1:")


def test_a_corrupt_database_is_an_error_line(built: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"not a milvus lite database")
    index = pointing_at(built, tmp_path / "corrupt", str(bad))
    query = tmp_path / "q.jpg"
    scene(1, (64, 64)).save(query)
    done = cbir("search", "--index", index, query)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"cbir: error: cannot open the Milvus Lite database {bad}"), done.stderr


@pytest.mark.milvus_server
def test_a_server_index_reopens_when_released(milvus_server: str, image_folder: Path,
                                              tmp_path: Path) -> None:
    from pymilvus import MilvusClient

    name = f"p_{uuid.uuid4().hex[:8]}"
    ok("index", "build", "--images", image_folder, "--index", tmp_path / "index", *BUILD,
       "--store", "milvus", "--milvus-uri", milvus_server, "--collection", name)
    client = MilvusClient(uri=milvus_server)
    for collection in (name, f"{name}_meta"):
        client.release_collection(collection)
    client.close()
    assert info(tmp_path / "index")["count"] == 12
