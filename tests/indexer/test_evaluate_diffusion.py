"""``cbir evaluate --diffusion`` / ``--preset`` on generated folders (random weights): the rows it
adds, their mAP against the library's strict-protocol rankings scored independently, and the
usage errors (one line, exit 2, before any forward pass)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.cli import main
from retrieval.evaluation import load_benchmark
from retrieval.evaluation._metrics import QueryTruth, mean_average_precision
from retrieval.rerank import Diffusion, diffused_rankings
from tests.conftest import scene

TINY = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
        "--no-progress", "--cache-dtype", "float32"]
SPEC = "k=3,candidates=5,kq=2"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folders")
    for c in range(3):
        for i in range(4):
            path = root / f"class{c}" / f"img{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            scene(300 + 10 * c, (80, 64)).resize((64 + 4 * i, 64)).save(path)
    return root


def _run(data: Path, out: Path, *extra: str) -> dict[str, Any]:
    code = main(["evaluate", "--dataset", "folders", "--root", str(data), *TINY, "--out",
                 str(out), "--cache", str(out.parent / "cache"), *extra])
    assert code == 0
    doc: dict[str, Any] = json.loads((out / "results.json").read_text())
    return doc


def test_diffusion_rows_equal_the_kernel_scored_independently(data: Path,
                                                              tmp_path: Path) -> None:
    doc = _run(data, tmp_path / "out", "--pooling", "sum", "--dba", "2", "--diffusion", SPEC,
               "--ap", "non_interpolated")
    by = {r["pooling"]: r["mAP"] for r in doc["results"]}
    label = "+" + Diffusion.parse(SPEC).label  # type: ignore[union-attr]
    assert set(by) == {"sum", f"sum{label}", f"sum+dba2{label}"}
    assert doc["rerank"]["diffusion"] == SPEC
    from retrieval.features._backbone import load_backbone
    from retrieval.images import list_images, load_image

    backbone = load_backbone("squeezenet1_1", "random")
    paths = list_images(data)
    x = np.stack([backbone.forward(backbone.preprocess(load_image(p), 64)[None])[0]
                  .sum(dim=(1, 2)).numpy() for p in paths])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = [p.parent.name for p in paths]
    truths = [QueryTruth.of([j for j, b in enumerate(labels) if b == a and j != i], exclude=[i])
              for i, a in enumerate(labels)]
    ranked = diffused_rankings(x, x, list(range(len(x))), diffusion=Diffusion.parse(SPEC),
                               dba_k=2)  # type: ignore[arg-type]
    want = mean_average_precision(truths, rankings=ranked, method="non_interpolated")
    assert abs(by[f"sum+dba2{label}"] - want) < 1e-6
    assert len(load_benchmark("folders", data).database) == len(paths)


@pytest.mark.parametrize("extra, message", [
    (["--diffusion", "alpha=1"], "diffusion parameter 'alpha'"),
    (["--diffusion", "nonsense"], "name=value"),
    (["--dba", "2"], "pass --qe K or --diffusion"),
    (["--preset", "quality", "--backbone", "vgg16", "--pooling", "sum", "--diffusion", "k=0"],
     "diffusion parameter 'k'"),
])
def test_usage_errors_are_one_line(data: Path, tmp_path: Path, extra: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["evaluate", "--dataset", "folders", "--root", str(data), *TINY, "--out",
                 str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out" / "cache").exists()  # refused before any forward pass
