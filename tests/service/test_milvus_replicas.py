"""Milvus as the store: the CLI on a Milvus-backed index, and two API instances on one collection.

Milvus Lite admits one process per database (a second one gets pymilvus's "Open local milvus
failed"), so the two instances run in this test process: one opened from the index directory,
one started from ``CBIR_STORE_URI`` + ``CBIR_COLLECTION`` alone. Each answers a search
identically, and an image added (or deleted) through one is seen through the other at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer import cli
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import API_KEY, AUTH, BUILD, jpeg

COLLECTION = "photos"


@pytest.fixture(scope="module")
def milvus_index(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
    pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")
    root = tmp_path_factory.mktemp("milvus_service")
    uri = str(root / "milvus.db")
    assert cli.main(["index", "build", "--images", str(image_folder), "--index",
                     str(root / "index"), *BUILD, "--store", "milvus", "--milvus-uri", uri,
                     "--collection", COLLECTION, "--faiss", "HNSW16"]) == 0
    return root / "index", uri


def ready(client: TestClient) -> TestClient:
    deadline = time.monotonic() + 240
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)
    return client


@pytest.fixture(scope="module")
def replicas(milvus_index: tuple[Path, str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    index, uri = milvus_index
    first = Settings(index_dir=index, api_key=API_KEY)
    second = Settings(store_uri=uri, collection=COLLECTION, api_key=API_KEY,
                      data_dir=tmp_path_factory.mktemp("replica_data"))
    with ExitStack() as stack:
        a = stack.enter_context(TestClient(create_app(first)))
        b = stack.enter_context(TestClient(create_app(second)))
        yield ready(a), ready(b)


def test_cli_on_a_milvus_index(milvus_index: tuple[Path, str], image_folder: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    index, uri = milvus_index
    capsys.readouterr()
    assert cli.main(["index", "info", "--index", str(index), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 12 and info["store"] == {"kind": "milvus", "uri": uri,
                                                     "collection": COLLECTION}
    query = sorted(image_folder.rglob("img00.jpg"))[0]
    assert cli.main(["search", "--index", str(index), str(query), "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert hits[0]["path"] == str(query.resolve()) and hits[0]["score"] == pytest.approx(1, 1e-5)


@pytest.mark.parametrize(("extra", "words"), [
    (["--faiss", "IVF16,PQ4"], "Milvus Lite has no IVF_PQ"),
    (["--dba", "3"], "--dba 3 needs --store faiss: every add or remove changes the augmented"),
])
def test_refused_at_build_time(image_folder: Path, tmp_path: Path, extra: list[str], words: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pymilvus")
    argv = ["index", "build", "--images", str(image_folder), "--index", str(tmp_path / "i"),
            *BUILD, "--store", "milvus", "--milvus-uri", str(tmp_path / "m.db"),
            "--collection", "c", *extra]
    assert cli.main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("cbir: error: ") and words in errors[0]
    assert not (tmp_path / "i").exists() and not (tmp_path / "m.db").exists()


def test_two_instances_share_one_collection(replicas: tuple[TestClient, TestClient]) -> None:
    a, b = replicas
    files = {"image": ("q.jpg", jpeg(3, (96, 64)), "image/jpeg")}
    found_a, found_b = (c.post("/search?k=5", files=files).json()["results"] for c in (a, b))
    assert found_a == found_b and len(found_a) == 5
    assert a.get("/stats").json()["count"] == b.get("/stats").json()["count"] == 12

    new = {"images": ("new.jpg", jpeg(999, (72, 72)), "image/jpeg")}
    added = a.post("/images", files=new, headers=AUTH)
    assert added.status_code == 201, added.text
    new_id = added.json()["added"][0]["id"]
    query = {"image": ("new.jpg", jpeg(999, (72, 72)), "image/jpeg")}
    top = b.post("/search?k=1", files=query).json()["results"][0]
    assert top["id"] == new_id and top["score"] == pytest.approx(1, abs=1e-4)
    assert b.get(f"/images/{new_id}").status_code == 200
    assert b.get("/readyz").json()["count"] == 13

    assert b.delete(f"/images/{new_id}", headers=AUTH).status_code == 200
    assert a.get(f"/images/{new_id}").status_code == 404
    assert a.get("/stats").json()["count"] == 12


def test_an_upload_folder_on_milvus(replicas: tuple[TestClient, TestClient]) -> None:
    a, _ = replicas
    new = {"images": ("f.jpg", jpeg(998, (72, 72)), "image/jpeg")}
    added = a.post("/images", files=new, headers=AUTH, data={"folder": "trips/2024"})
    assert added.status_code == 201, added.text
    record = added.json()["added"][0]
    assert record["folder"] == "trips/2024" and record["path"].startswith("trips/2024/")
    try:
        query = {"image": ("f.jpg", jpeg(998, (72, 72)), "image/jpeg")}
        hits = a.post("/search?folder=trips", files=query).json()["results"]
        assert [(h["id"], h["folder"]) for h in hits] == [(record["id"], "trips/2024")]
        table = {f["folder"]: (f["images"], f["under"]) for f in a.get("/folders").json()[
            "folders"]}
        assert table["trips"] == (0, 1) and table["trips/2024"] == (1, 1)
        assert a.post("/images", files=new, headers=AUTH,
                      data={"folder": "../x"}).status_code == 422
    finally:
        assert a.delete(f"/images/{record['id']}", headers=AUTH).status_code == 200
