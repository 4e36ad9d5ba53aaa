"""The recommended configuration (CroW, 2 scales, αQE + DBA) end to end: ``cbir index build`` ->
``cbir search --json`` / ``--id`` and a real server's ``POST /search?qe=``, ``GET
/images/{id}/similar`` and ``/stats`` (random weights: plumbing, not quality). The multi-scale
query embedding of a stored image equals its stored vector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer import cli
from retrieval import Manifest, load_image, open_collection
from tests.service.conftest import BUILD, ServerFactory, jpeg

RECOMMENDED = ["--pooling", "crow", "--scales", "1,0.5", "--qe", "2", "--dba", "2"]


@pytest.fixture(scope="module")
def rec_index(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("recommended") / "index"
    assert cli.main(["index", "build", "--images", str(image_folder), "--index", str(index),
                     *BUILD, *RECOMMENDED]) == 0
    return index


def test_manifest_and_query_equals_database(rec_index: Path) -> None:
    m = Manifest.load(rec_index)
    assert (m.pooling, m.scales, m.qe_k, m.dba_k) == ("crow", (1.0, 0.5), 2, 2)
    collection = open_collection(rec_index)
    try:
        record = collection.index.get(3)
        query = collection.embedder.embed_images([load_image(Path(record.path))])
        np.testing.assert_allclose(query, collection.index.stored_vectors([3]), atol=1e-5)
    finally:
        collection.close()


def test_cli_search_json_and_by_id(rec_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = open_collection(rec_index)
    try:
        image = path.index.get(5).path
    finally:
        path.close()
    assert cli.main(["search", "--index", str(rec_index), image, "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 3 and out["results"][0]["path"] == image
    assert cli.main(["search", "--index", str(rec_index), "--id", "5", "-k", "3", "--json",
                     "--qe", "0"]) == 0
    by_id = json.loads(capsys.readouterr().out)
    assert by_id["query"] == "id:5" and 5 not in [r["id"] for r in by_id["results"]]
    assert cli.main(["search", "--index", str(rec_index), "-k", "3"]) == 2


def test_server(rec_index: Path, start_server: ServerFactory) -> None:
    image = jpeg(3)
    with start_server(rec_index).client() as client:
        manifest = client.get("/stats").json()["manifest"]
        assert (manifest["scales"], manifest["qe_k"], manifest["dba_k"]) == ([1.0, 0.5], 2, 2)
        for qe in (None, 0, 3):
            params = {"k": 4} if qe is None else {"k": 4, "qe": qe}
            found = client.post("/search", params=params, files={"image": ("q.jpg", image)})
            assert found.status_code == 200 and len(found.json()["results"]) == 4
        bad = client.post("/search", params={"qe": 51}, files={"image": ("q.jpg", image)})
        assert bad.status_code == 422
        similar = client.get("/images/2/similar", params={"k": 3})
        assert similar.status_code == 200
        assert 2 not in [r["id"] for r in similar.json()["results"]]
        assert client.get("/images/999/similar").status_code == 404
