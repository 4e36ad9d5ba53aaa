"""A preset's mAP in ``cbir evaluate --preset`` equals the mAP of its index searched through the
CLI and through the HTTP API: ``cbir index build --preset`` serves what the evaluation scores.

Each command runs in its own process, as a user runs them, over the generated labelled collection
of :mod:`tests.indexer.test_evaluate_equals_search` (separate query photos, so the strict
protocol excludes nothing). The preset is taken whole: pooling, max side, scales, αQE, DBA and
its default diffusion, the only flags given being the seeded random weights. The API is the real
server (``python -m service``) on the index the CLI built; ``POST /search`` answers with the
index's defaults, the preset's re-ranking.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.presets import preset_for
from tests.indexer.test_evaluate_equals_search import (
    CLASSES,
    PER_CLASS,
    finish,
    photos,
    start,
    trapezoidal_ap,
)
from tests.service.conftest import Server

pytestmark = pytest.mark.slow

BACKBONE = ["--backbone", "squeezenet1_1", "--weights", "random"]
N = CLASSES * PER_CLASS


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("preset_landmarks")
    return {"database": photos(root / "database", PER_CLASS, 0),
            "queries": photos(root / "queries", 1, 50), "root": root}


def mean_ap(rankings: list[list[str]], queries: list[Path]) -> float:
    """The mAP of full rankings (paths, or anything whose parent folder is the class)."""
    aps = []
    for query, ranking in zip(queries, rankings, strict=True):
        assert len(ranking) == N
        positives = {r for r in ranking if Path(r).parent.name == query.parent.name}
        aps.append(trapezoidal_ap(ranking, positives))
    return sum(aps) / len(aps)


@pytest.mark.parametrize("preset", ["quality"])  # the others differ in numbers only
def test_preset_evaluates_as_it_searches(preset: str, collection: dict[str, Path],
                                         tmp_path: Path) -> None:
    chosen = preset_for(preset, "squeezenet1_1")
    assert chosen.diffusion is not None and chosen.dba > 0  # the graph-served path is tested
    index = tmp_path / "index"
    finish(start("evaluate", "--dataset", "folders", "--root", str(collection["database"]),
                 "--queries", str(collection["queries"]), *BACKBONE, "--preset", preset,
                 "--out", str(tmp_path / "eval"), "--cache-dtype", "float32", "--no-progress"),
           start("index", "build", "--images", str(collection["database"]), "--index",
                 str(index), *BACKBONE, "--preset", preset, "--no-progress"))
    doc = json.loads((tmp_path / "eval" / "results.json").read_text())
    (reported,) = [r["mAP"] for r in doc["results"]
                   if r["pooling"] == doc["preset_row"] and not r["whiten"]]

    queries = sorted(collection["queries"].rglob("*.png"))
    search = start("search", "--index", str(index), *map(str, queries), "-k", str(N), "--json")
    server = Server(index, tmp_path / "server.log", {}).start()  # while the search runs
    try:
        with server.client() as client:
            api = []
            for q in queries:
                with q.open("rb") as f:
                    response = client.post("/search", params={"k": N},
                                           files={"image": (q.name, f, "image/png")})
                assert response.status_code == 200, response.text
                api.append([(h["id"], h["score"]) for h in response.json()["results"]])
    finally:
        server.stop()
    (out,) = finish(search)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["query"] for line in lines] == [str(q) for q in queries]
    cli = [[h["path"] for h in line["results"]] for line in lines]
    cli_hits = [[(h["id"], h["score"]) for h in line["results"]] for line in lines]

    searched = mean_ap(cli, queries)
    print(f"{preset} ({doc['preset_row']}): evaluate {reported}, search {searched}")
    assert 0.0 < searched < 1.0  # the collection does not make the preset perfect
    assert reported == pytest.approx(searched, abs=1e-6)
    assert [[i for i, _ in r] for r in api] == [[i for i, _ in r] for r in cli_hits]
    for a, c in zip(api, cli_hits, strict=True):
        assert [s for _, s in a] == pytest.approx([s for _, s in c], rel=1e-5)
