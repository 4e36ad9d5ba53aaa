"""End-to-end tests of the `cbir` command line on generated images with random weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main
from retrieval.index import ImageIndex, Store
from tests.conftest import scene

BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]


@pytest.fixture(scope="module")
def built(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("cli") / "index"
    assert main(["index", "build", "--images", str(image_folder), "--index", str(index),
                 "--batch-size", "3", *BUILD]) == 0
    return index


@pytest.fixture()
def index_copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "index", ignore=shutil.ignore_patterns("lock")))


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_build_skips_and_logs_the_corrupt_file(built: Path, image_folder: Path) -> None:
    log = (built / "skipped.log").read_text()
    assert "broken.jpg" in log and log.count("\n") == 1
    with ImageIndex.open(built) as index:
        assert index.count == 12 == index.ntotal
        paths = {index.get(i).path for i in range(1, 13)}
    assert paths == {str(p.resolve()) for p in image_folder.rglob("img*")}
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["weights"] == "random:seed=0" and manifest["max_side"] == 64


def test_search_json_matches_brute_force(
    built: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = next(image_folder.rglob("img05.*"))
    out = run_json(capsys, ["search", "--index", str(built), str(query), "-k", "5", "--json"])
    assert out["query"] == str(query)
    results = out["results"]
    assert results[0]["path"] == str(query.resolve())
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    store = Store.open(built / "store.sqlite")
    ids, xb = next(store.iter_all())
    store.close()
    xq = xb[ids == results[0]["id"]]
    scores = (xb @ xq.T)[:, 0]
    order = np.argsort(-scores, kind="stable")[:5]
    assert [r["id"] for r in results] == ids[order].tolist()
    assert [r["score"] for r in results] == pytest.approx(scores[order].tolist(), abs=1e-5)


def test_info_json(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, ["index", "info", "--index", str(built), "--json"])
    assert info["count"] == 12 and info["manifest"]["dim"] == 512
    assert info["size_bytes"] > 0


def test_add_then_remove(index_copy: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new.png"
    scene(500, (70, 90)).save(new)
    capsys.readouterr()
    assert main(["index", "add", "--index", str(index_copy), str(new), "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    new_id = int(line.split("\t")[0])
    assert new_id == 13 and line.endswith(str(new.resolve()))
    out = run_json(capsys, ["search", "--index", str(index_copy), str(new), "-k", "1", "--json"])
    assert out["results"][0]["id"] == new_id
    assert main(["index", "remove", "--index", str(index_copy), str(new_id)]) == 0
    out = run_json(capsys, ["search", "--index", str(index_copy), str(new), "-k", "20",
                            "--json"])
    assert new_id not in [r["id"] for r in out["results"]] and len(out["results"]) == 12
    assert main(["index", "remove", "--index", str(index_copy), "999"]) == 1


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["index", "build", "--images", "{missing}", "--index", "{new}", *BUILD], 2, "missing"),
        (["index", "build", "--images", "{images}", "--index", "{index}", *BUILD], 2,
         "already holds an index"),
        (["index", "build", "--images", "{images}", "--index", "{new}", "--pooling", "median",
          *BUILD], 2, "invalid choice"),
        (["index", "build", "--images", "{images}", "--index", "{new}", "--backbone", "vgg16",
          "--weights", "{missing}"], 1, "does not exist"),
        (["search", "--index", "{missing}", "{query}"], 1, "not an index directory"),
        (["search", "--index", "{index}", "{broken}"], 1, "broken.jpg"),
        (["search", "--index", "{index}", "{query}", "-k", "0"], 2, "positive"),
        (["search", "--index", "{index}", "{query}", "--nprobe", "4"], 2,
         "nprobe does not apply"),
        (["index", "build", "--images", "{images}", "--index", "{new}", "--ef-search", "8",
          *BUILD], 2, "ef_search does not apply"),
    ],
)
def test_errors_are_one_line_with_exit_code(
    argv: list[str], code: int, message: str, built: Path, image_folder: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = {"missing": tmp_path / "missing", "new": tmp_path / "new", "images": image_folder,
             "index": built, "query": next(image_folder.rglob("img01.*")),
             "broken": image_folder / "group0" / "broken.jpg"}
    capsys.readouterr()
    assert main([a.format(**names) for a in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_build_and_search_with_bf16_and_channels_last(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "fast"
    fast = ["--precision", "bf16", "--channels-last"]
    assert main(["index", "build", "--images", str(image_folder), "--index", str(index),
                 *BUILD, *fast]) == 0
    query = next(image_folder.rglob("img05.*"))
    out = run_json(capsys, ["search", "--index", str(index), str(query), "-k", "1", "--json",
                            *fast])
    assert out["results"][0]["path"] == str(query.resolve())
    assert out["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert main(["index", "build", "--images", str(image_folder), "--index",
                 str(tmp_path / "bad"), *BUILD, "--precision", "fp8"]) == 2


def test_ivf_index_stores_its_search_params(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "ivf"
    assert main(["index", "build", "--images", str(image_folder), "--index", str(index),
                 "--faiss", "IVF2,Flat", *BUILD]) == 0
    info = run_json(capsys, ["index", "info", "--index", str(index), "--json"])
    assert info["manifest"]["search_params"] == {"nprobe": 16}  # the IVF default
    assert main(["index", "build", "--images", str(image_folder), "--index",
                 str(tmp_path / "ivf1"), "--faiss", "IVF2,Flat", "--nprobe", "1", *BUILD]) == 0
    with ImageIndex.open(tmp_path / "ivf1") as opened:
        assert opened.search_params == {"nprobe": 1}
    query = next(image_folder.rglob("img05.*"))
    out = run_json(capsys, ["search", "--index", str(index), str(query), "-k", "12", "--json",
                            "--nprobe", "2"])
    assert len(out["results"]) == 12  # both lists probed: every image comes back
    assert out["results"][0]["path"] == str(query.resolve())
