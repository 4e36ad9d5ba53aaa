"""A new pooling is one class and one registration: build, search and evaluate with it unchanged.

"median" is a test-only pooling with one parameter (a quantile); registering it gives it a name in
the registry, CLI flags (``--median-q``), a manifest entry and an evaluation row, with no edit
anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.cli import main
from retrieval import Manifest, load_image, open_collection
from retrieval.features import Batch
from retrieval.pooling import POOLINGS, MapPooling, Param, register_pooling
from tests.indexer.test_evaluate import make_folders

TINY = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64", "--no-progress"]


class Median(MapPooling):
    """The q-quantile of each channel over the spatial cells (q = 0.5: the median)."""

    name = "median"
    params = (Param("q", 0.5, "quantile of each channel", low=0.0, high=1.0),)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).quantile(float(self.values["q"]), dim=2)


@pytest.fixture()
def median() -> Iterator[type[Median]]:
    register_pooling(Median)
    yield Median
    POOLINGS.pop("median")


def test_build_search_and_evaluate_with_a_registered_pooling(
    median: type[Median], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_folders(tmp_path / "data", 2, 3, 7)
    index = tmp_path / "index"
    assert main(["index", "build", "--images", str(data), "--index", str(index), *TINY,
                 "--pooling", "median", "--median-q", "0.25"]) == 0
    manifest = Manifest.load(index)
    assert manifest.pooling == "median" and dict(manifest.pooling_params) == {"q": 0.25}

    query = sorted(data.rglob("*.png"))[0]
    capsys.readouterr()
    assert main(["search", "--index", str(index), str(query), "-k", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results[0]["path"] == str(query.resolve())
    collection = open_collection(index)
    try:  # the stored vector is the quantile pooling of the map, L2-normalised
        embedder = collection.embedder
        (batch,) = embedder.extract([(query, query)])
        assert isinstance(batch, Batch)
        expected = batch.fmaps[0].flatten(1).quantile(0.25, dim=1).numpy()
        expected /= np.linalg.norm(expected)
        np.testing.assert_allclose(embedder.describe_batch(batch)[0][0], expected, atol=1e-5)
        np.testing.assert_array_equal(embedder.embed_images([load_image(query)]),
                                      embedder.describe_batch(batch)[0])
    finally:
        collection.close()

    out = tmp_path / "eval"
    assert main(["evaluate", "--dataset", "folders", "--root", str(data), *TINY,
                 "--pooling", "sum,median", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert {row["pooling"] for row in doc["results"]} == {"sum", "median"}
    assert doc["pooling_params"]["median"] == {"q": 0.5}


def test_its_parameters_are_checked_like_any_other(
    median: type[Median], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_folders(tmp_path / "data", 1, 2, 3)
    code = main(["index", "build", "--images", str(data), "--index", str(tmp_path / "i"), *TINY,
                 "--pooling", "median", "--median-q", "1.5"])
    assert code == 2
    assert "at most 1" in capsys.readouterr().err
