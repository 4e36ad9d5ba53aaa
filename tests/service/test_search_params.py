"""Search-time knobs: the index's own (from its manifest), overridden by ``CBIR_NPROBE`` /
``CBIR_EF_SEARCH``, shown in ``/stats``; knobs that do not apply stop the server at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer import cli
from tests.service.conftest import BUILD, ServerFactory, copy_index, jpeg


@pytest.fixture(scope="module")
def hnsw_index(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("hnsw") / "index"
    assert cli.main(["index", "build", "--images", str(image_folder), "--index", str(index),
                     "--faiss", "HNSW16", "--ef-search", "24", *BUILD]) == 0
    return index


def test_the_index_knobs_apply_and_the_environment_overrides_them(
    hnsw_index: Path, start_server: ServerFactory, tmp_path: Path
) -> None:
    with start_server(copy_index(hnsw_index, tmp_path / "a")).client() as client:
        assert client.get("/stats").json()["manifest"]["search_params"] == {"ef_search": 24}
    with start_server(copy_index(hnsw_index, tmp_path / "b"), ef_search="48").client() as client:
        assert client.get("/stats").json()["manifest"]["search_params"] == {"ef_search": 48}
        found = client.post("/search", params={"k": 12}, files={"image": ("q.jpg", jpeg(3))})
        assert found.status_code == 200 and len(found.json()["results"]) == 12


def test_a_knob_the_index_does_not_have_stops_the_server(start_server: ServerFactory) -> None:
    with pytest.raises(pytest.fail.Exception, match="nprobe does not apply"):
        start_server(nprobe="4")  # the session's index is Flat
