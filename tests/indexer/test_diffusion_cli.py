"""Diffusion through ``cbir index build`` / ``cbir search`` equals the evaluation's kernel.

A small labelled collection (random seeded weights, max side 64) is built by the real CLI with
DBA and a default diffusion, so the index keeps its neighbour graph (``--graph-k`` raised to what
the diffusion reads). Each query's
ranking from ``cbir search --json`` must equal :func:`retrieval.rerank.diffused_rankings` (what
``cbir evaluate --diffusion`` scores) on the same stored vectors; without a graph the search is
refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import cli
from retrieval import open_collection
from retrieval.rerank import Diffusion, diffused_rankings
from tests.conftest import scene

TINY = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
        "--no-progress"]
SPEC = "k=4,candidates=6,kq=2,iterations=50"


def photos(root: Path, classes: int, per_class: int, seed: int) -> list[Path]:
    out = []
    for c in range(classes):
        for i in range(per_class):
            path = root / f"landmark{c}" / f"photo{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            base = scene(seed + c, (72, 64)).resize((64 + 3 * i, 64 - 2 * i))
            base.paste(scene(seed + 100 + 7 * c + i, (32, 32)).crop((0, 0, 16, 16)), (3 * i, 2 * i))
            base.save(path)
            out.append(path)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("diffusion_cli")
    database = photos(root / "database", 3, 6, seed=7)
    queries = photos(root / "queries", 3, 1, seed=7)
    index = root / "index"
    code = cli.main(["index", "build", "--images", str(root / "database"), "--index", str(index),
                     "--pooling", "crow", "--dba", "2", "--diffusion", SPEC, *TINY])
    assert code == 0
    plain = root / "plain"
    assert cli.main(["index", "build", "--images", str(root / "database"), "--index", str(plain),
                     "--pooling", "crow", *TINY]) == 0
    return {"index": index, "plain": plain, "database": database, "queries": queries}


def _searched(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert cli.main(["search", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _library(index: Path, queries: list[Path]) -> tuple[list[list[str]], np.ndarray]:
    """The evaluation's rankings (paths) of ``queries``, and the stored ids in database order."""
    collection = open_collection(index, read_only=True)
    try:
        from retrieval import load_image

        ids = collection.index.ids_after(0, 1000)
        xb = collection.index.stored_vectors(ids)
        paths = [r.path for r in collection.index.records(ids)]
        xq = collection.embedder.embed_images([load_image(p) for p in queries])
    finally:
        collection.close()
    ranked = diffused_rankings(xq, xb, [None] * len(queries), diffusion=Diffusion.parse(SPEC),
                               dba_k=2)
    return [[paths[r] for r in row] for row in ranked], np.asarray(ids)


def test_search_ranks_like_the_evaluation(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    lines = _searched(capsys, *map(str, tiny["queries"]), "--index", str(tiny["index"]),
                      "-k", "18")
    want, _ = _library(tiny["index"], tiny["queries"])
    got = [[hit["path"] for hit in line["results"]] for line in lines]
    assert got == want
    scores = [hit["score"] for hit in lines[0]["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_search_can_turn_diffusion_off_or_change_it(
    tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    query = str(tiny["queries"][0])
    off = _searched(capsys, query, "--index", str(tiny["index"]), "--diffusion", "off")
    plain = _searched(capsys, query, "--index", str(tiny["index"]), "--diffusion", "off",
                      "--qe", "0")
    assert off == plain and off[0]["results"][0]["score"] <= 1.0 + 1e-6
    other = _searched(capsys, query, "--index", str(tiny["index"]), "--diffusion", "kq=1",
                      "-k", "18")
    assert {h["path"] for h in other[0]["results"]} == {str(p) for p in tiny["database"]}


def test_no_graph_is_one_line(tiny: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = cli.main(["search", str(tiny["queries"][0]), "--index", str(tiny["plain"]),
                     "--diffusion", SPEC])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["cbir: error: this index keeps no neighbour graph: rebuild with --graph-k 6"]


def test_bad_spec_is_refused_before_loading(tiny: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = cli.main(["search", str(tiny["queries"][0]), "--index", str(tiny["index"]),
                     "--diffusion", "alpha=2"])
    assert code == 2
    assert "diffusion parameter 'alpha'" in capsys.readouterr().err


def test_info_shows_diffusion(tiny: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli.main(["index", "info", "--index", str(tiny["index"]), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    assert manifest["diffusion"] == Diffusion.parse(SPEC).to_dict()  # type: ignore[union-attr]
    assert manifest["preset"] is None


def test_diffusion_changes_the_ranking_here(tiny: dict[str, Any]) -> None:
    """The equality above is not vacuous: diffusion ranks this collection otherwise than DBA."""
    diffused, _ = _library(tiny["index"], tiny["queries"])
    collection = open_collection(tiny["index"], read_only=True)
    try:
        from retrieval import load_image
        from retrieval.index import search_hits

        xq = collection.embedder.embed_images([load_image(p) for p in tiny["queries"]])
        plain = [[h.record.path for h in row]
                 for row in search_hits(collection.index, xq, 18, diffusion=False)]
    finally:
        collection.close()
    assert plain != diffused


@pytest.mark.parametrize("folder, count", [("landmark1", 6), ("nowhere", 0)])
def test_a_filter_holds_through_the_graph(
    tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    folder: str, count: int
) -> None:
    """Growth through the graph never brings in an image the filter leaves out."""
    lines = _searched(capsys, str(tiny["queries"][0]), "--index", str(tiny["index"]),
                      "-k", "18", "--folder", folder)
    paths = [hit["path"] for hit in lines[0]["results"]]
    assert len(paths) == count and all(f"/{folder}/" in p for p in paths)
