"""Tags from the CLI: ``cbir index add --tag`` (new and unchanged files), ``cbir index tag``
(all or none), ``cbir search --tag`` (all must match: the unfiltered ranking restricted to the
tagged images); bad tags exit 2 with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from indexer.cli import main
from retrieval.index import ImageIndex
from tests.conftest import scene
from tests.indexer.test_cli import BUILD


@pytest.fixture(scope="module")
def built(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("tag_cli") / "index"
    assert main(["index", "build", "--images", str(image_folder), "--index", str(index),
                 *BUILD]) == 0
    return index


@pytest.fixture()
def index_copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "index", ignore=shutil.ignore_patterns("lock")))


def tags_of(index: Path) -> dict[str, tuple[str, ...]]:
    with ImageIndex.open(index, read_only=True) as opened:
        return {r.path: r.tags for r in opened.records(opened.ids_after(0, 1000))}


def run(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    capsys.readouterr()
    assert main(argv) == code
    captured = capsys.readouterr()
    return captured.out if code == 0 else captured.err.strip().splitlines()[-1]


def test_add_tags_new_and_unchanged_files(index_copy: Path, image_folder: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new.png"
    scene(701, (70, 50)).save(new)
    old = next(image_folder.rglob("img00.*"))
    run(capsys, ["index", "add", "--index", str(index_copy), str(new), str(old),
                 "--tag", "trip", "--tag", " 2026 ", "--no-progress"])
    tags = tags_of(index_copy)
    assert tags[str(new.resolve())] == ("2026", "trip")
    assert tags[str(old.resolve())] == ("2026", "trip")
    assert sum(1 for t in tags.values() if t) == 2
    assert "comma" in run(capsys, ["index", "add", "--index", str(index_copy), str(new),
                                   "--tag", "a,b"], 2)


def test_tag_command_and_search_filter(index_copy: Path, image_folder: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, ["index", "tag", "--index", str(index_copy), "2", "3", "5",
                       "--add", "sea"])
    assert out.splitlines() == ["2\tsea", "3\tsea", "5\tsea"]
    run(capsys, ["index", "tag", "--index", str(index_copy), "3", "--add", "red"])
    assert "999" in run(capsys, ["index", "tag", "--index", str(index_copy), "2", "999",
                                 "--add", "lost"], 1)
    assert "lost" not in str(tags_of(index_copy))
    assert "--add" in run(capsys, ["index", "tag", "--index", str(index_copy), "2"], 2)
    query = str(next(image_folder.rglob("img07.*")))
    argv = ["search", "--index", str(index_copy), query, "--json", "-k", "12"]
    every: dict[str, Any] = json.loads(run(capsys, argv))
    sea = json.loads(run(capsys, [*argv, "--tag", "sea"]))
    want = [(r["id"], r["score"]) for r in every["results"] if r["id"] in {2, 3, 5}]
    assert [r["id"] for r in sea["results"]] == [i for i, _ in want]
    assert [r["score"] for r in sea["results"]] == pytest.approx([s for _, s in want], abs=1e-5)
    both = json.loads(run(capsys, [*argv, "--tag", "sea", "--tag", "red"]))
    assert [(r["id"], r["tags"]) for r in both["results"]] == [(3, ["red", "sea"])]
    out = run(capsys, ["index", "tag", "--index", str(index_copy), "3", "--set", ""])
    assert out.splitlines() == ["3\t"]
