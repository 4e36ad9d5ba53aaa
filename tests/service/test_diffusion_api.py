"""``POST /search?diffusion=`` and ``GET /images/{id}/similar?diffusion=`` in process: the same
ranking as :func:`retrieval.rerank.diffused_rankings` (what ``cbir evaluate`` scores), and a clear
422 when the index keeps no neighbour graph. The index keeps its graph for real
(``cbir index build --graph-k``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import cli
from retrieval import load_image, open_collection
from retrieval.rerank import Diffusion, diffused_rankings
from service.app import create_app
from service.settings import Settings
from tests.conftest import scene

SPEC = "k=4,candidates=6,kq=2,iterations=50"
TINY = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
        "--no-progress"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("diffusion_api")
    for c in range(3):
        for i in range(6):
            path = root / "db" / f"class{c}" / f"p{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            scene(50 + c, (72, 64)).resize((64 + 3 * i, 64 - 2 * i)).save(path)
    query = root / "query.png"
    scene(51, (70, 66)).save(query)
    index, plain = root / "index", root / "plain"
    for target, extra in ((index, ["--graph-k", "8"]), (plain, [])):
        assert cli.main(["index", "build", "--images", str(root / "db"), "--index", str(target),
                         "--pooling", "crow", *extra, *TINY]) == 0
    return {"index": index, "plain": plain, "query": query}


def _client(index: Path) -> TestClient:
    return TestClient(create_app(Settings(index_dir=index)))


@pytest.fixture()
def client(built: dict[str, Any]) -> Iterator[TestClient]:
    with _client(built["index"]) as c:
        _ready(c)
        yield c


def _ready(c: TestClient) -> None:
    deadline = time.monotonic() + 120
    while c.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the app did not load its index"
        time.sleep(0.05)


def _library(index: Path, query: Path | None, own: int | None) -> list[int]:
    collection = open_collection(index, read_only=True)
    try:
        ids = collection.index.ids_after(0, 1000)
        xb = collection.index.stored_vectors(ids)
        xq = (collection.embedder.embed_images([load_image(query)]) if query is not None
              else xb[own:own + 1])
    finally:
        collection.close()
    ranked = diffused_rankings(xq, xb, [own], diffusion=Diffusion.parse(SPEC))[0]
    return [ids[r] for r in ranked if r != own]


def test_search_ranks_like_the_evaluation(client: TestClient, built: dict[str, Any]) -> None:
    with built["query"].open("rb") as f:
        response = client.post("/search", params={"diffusion": SPEC, "k": 18},
                               files={"image": ("q.png", f, "image/png")})
    assert response.status_code == 200, response.text
    got = [hit["id"] for hit in response.json()["results"]]
    assert got == _library(built["index"], built["query"], None)


def test_similar_ranks_like_leave_one_out(client: TestClient, built: dict[str, Any]) -> None:
    """Without DBA, a stored image's look-alikes are the strict leave-one-out ranking: the
    image is dropped from the graph rows and from the first hits."""
    response = client.get("/images/5/similar", params={"diffusion": SPEC, "k": 17})
    assert response.status_code == 200, response.text
    got = [hit["id"] for hit in response.json()["results"]]
    assert got == _library(built["index"], None, own=4)  # id 5 is row 4
    assert 5 not in got


def test_bad_spec_is_422(client: TestClient) -> None:
    response = client.get("/images/1/similar", params={"diffusion": "alpha=1"})
    assert response.status_code == 422
    assert "diffusion parameter 'alpha'" in response.json()["detail"]


def test_no_graph_is_422_json(built: dict[str, Any]) -> None:
    with _client(built["plain"]) as c:
        _ready(c)
        response = c.get("/images/1/similar", params={"diffusion": "on"})
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "invalid_request"
        assert body["detail"] == "this index keeps no neighbour graph: rebuild with --graph-k 50"
        plain = c.get("/images/1/similar")
        assert plain.status_code == 200 and np.isfinite(plain.json()["results"][0]["score"])


def test_stats_show_the_default_diffusion(client: TestClient) -> None:
    manifest = client.get("/stats").json()["manifest"]
    assert manifest["diffusion"] is None and manifest["preset"] is None
