"""The mAP ``cbir evaluate`` reports equals the mAP of ``cbir search --json`` over an index built
with the same configuration: the published numbers are computed by the code that serves.

A small labelled collection is generated (classes of synthetic photos for the database, one more
photo per class as the query folder; random seeded weights, max side 64). For each configuration,
every CLI command runs in its own process, as a user runs them: ``cbir evaluate --dataset folders
--queries`` reports the mAP; ``cbir index build`` builds the index and one ``cbir search --json``
per query ranks the whole database. The test computes AP from those rankings itself, under the
protocol evaluate uses for a query folder (:func:`retrieval.evaluation._benchmarks.load_folders`):
positives are the database images of the query's class, nothing is junk or excluded (the queries
are not database images), the ranking is the full database, AP is trapezoidal (Oxford's
``compute_ap``: precision 1 at recall 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, scene

pytestmark = pytest.mark.slow

TINY = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64"]
CLASSES, PER_CLASS = 3, 4
CONFIGS = {  # name: (build/evaluate flags, evaluate's row, whether it learns)
    "sum": (["--pooling", "sum"], "sum", False),
    "crow, 2 scales, qe + dba": (["--pooling", "crow", "--scales", "1,0.75", "--qe", "2",
                                  "--dba", "2"], "crow@1,0.75+qe2+dba2", False),
    "mop": (["--pooling", "mop", "--vlad-k", "4"], "mop", True),
}


def photos(root: Path, per_class: int, seed: int, classes: int = CLASSES) -> Path:
    for c in range(classes):
        for i in range(per_class):
            path = root / f"landmark{c}" / f"photo{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            # a class shares its scene; its photos differ in framing (size) and a seeded extra
            base = scene(seed + c, (72, 64)).resize((64 + 4 * i, 64 - 2 * i))
            extra = scene(seed + 1000 + 10 * c + i, base.size)
            base.paste(extra.crop((0, 0, 16, 16)), (4 * i, 2 * i))
            base.save(path)
    return root


def start(*argv: str) -> subprocess.Popen[str]:
    """One ``cbir`` command in its own process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "indexer", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def finish(*processes: subprocess.Popen[str]) -> list[str]:
    """Wait for the commands (they run side by side); their stdouts."""
    outs = []
    for p in processes:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


def trapezoidal_ap(ranking: list[str], positives: set[str]) -> float:
    """Oxford's compute_ap over a full ranking with no junk, written out."""
    ap, found = 0.0, 0
    for r, path in enumerate(ranking):
        if path in positives:
            before = 1.0 if r == 0 else found / r
            found += 1
            ap += (before + found / (r + 1)) / 2
    return ap / len(positives)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("landmarks")
    return {"database": photos(root / "database", PER_CLASS, 0),
            "queries": photos(root / "queries", 1, 50, classes=2),
            "train": photos(root / "train", 2, 100), "root": root}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_evaluate_reports_the_map_of_search(name: str, collection: dict[str, Path]) -> None:
    flags, row, learns = CONFIGS[name]
    work = collection["root"] / name.replace(" ", "_").replace(",", "")
    evaluate_train = ["--train-images", str(collection["train"])] if learns else []
    build_train = ["--train-images", str(collection["train"])] if learns else []
    index = work / "index"
    finish(start("evaluate", "--dataset", "folders", "--root", str(collection["database"]),
                 "--queries", str(collection["queries"]), *TINY, *flags, *evaluate_train,
                 "--out", str(work / "eval"), "--cache-dtype", "float32", "--no-progress"),
           start("index", "build", "--images", str(collection["database"]), "--index",
                 str(index), *TINY, *flags, *build_train, "--no-progress"))
    doc = json.loads((work / "eval" / "results.json").read_text())
    (reported,) = [r["mAP"] for r in doc["results"] if r["pooling"] == row and not r["whiten"]]

    n = CLASSES * PER_CLASS
    queries = sorted(collection["queries"].rglob("*.png"))
    outs = finish(*(start("search", "--index", str(index), str(q), "-k", str(n), "--json")
                    for q in queries))
    aps = []
    for query, out in zip(queries, outs, strict=True):
        ranking = [Path(h["path"]) for h in json.loads(out)["results"]]
        assert len(ranking) == n
        aps.append(trapezoidal_ap([str(p) for p in ranking],
                                  {str(p) for p in ranking if p.parent.name == query.parent.name}))
    searched = sum(aps) / len(aps)
    print(f"{name}: evaluate {reported}, search {searched}, per query {aps}")
    assert 0.0 < searched < 1.0  # the collection does not make every configuration perfect
    assert reported == pytest.approx(searched, abs=1e-6)
