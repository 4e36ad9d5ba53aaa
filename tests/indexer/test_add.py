"""``cbir index add`` is idempotent per path: unchanged files skipped, changed ones replaced."""

from __future__ import annotations

import json
import logging
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
    index = tmp_path_factory.mktemp("add") / "index"
    assert main(["index", "build", "--images", str(image_folder), "--index", str(index),
                 *BUILD]) == 0
    return index


@pytest.fixture()
def index_copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "index", ignore=shutil.ignore_patterns("lock")))


def _records_by_path(index: Path) -> dict[str, list[tuple[int, str]]]:
    with ImageIndex.open(index, read_only=True) as opened:
        assert opened.ntotal == opened.count
        records = opened.records(opened.ids_after(0, 1000))
    out: dict[str, list[tuple[int, str]]] = {}
    for r in records:
        out.setdefault(r.path, []).append((r.id, r.sha256))
    return out


def test_add_is_idempotent_per_path(
    index_copy: Path, image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    scene(601, (80, 60)).save(a)
    scene(602, (60, 80)).save(b)
    capsys.readouterr()
    assert main(["index", "add", "--index", str(index_copy), str(a), str(b), "--no-progress"]) == 0
    first = _records_by_path(index_copy)
    assert len(first[str(a.resolve())]) == len(first[str(b.resolve())]) == 1
    capsys.readouterr()

    assert main(["index", "add", "--index", str(index_copy), str(a), str(b), str(a),
                 "--no-progress"]) == 0  # a retried add, a path given twice
    out = capsys.readouterr().out
    assert "indexed 0 images" in out and "skipped 2 unchanged files" in out
    assert _records_by_path(index_copy) == first

    assert main(["index", "add", "--index", str(index_copy), str(image_folder),
                 "--no-progress"]) == 0  # what build indexed is a record per path too
    assert "skipped 12 unchanged files" in capsys.readouterr().out
    assert _records_by_path(index_copy) == first


def test_add_of_a_changed_file_replaces_exactly_its_record(
    index_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    scene(611, (80, 60)).save(a)
    scene(612, (60, 80)).save(b)
    assert main(["index", "add", "--index", str(index_copy), str(a), str(b), "--no-progress"]) == 0
    before = _records_by_path(index_copy)
    [(old_id, old_sha)] = before[str(a.resolve())]
    scene(613, (70, 70)).save(a)  # new content at the same path
    capsys.readouterr()
    assert main(["index", "add", "--index", str(index_copy), str(a), str(b), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "indexed 1 images" in out and "skipped 1 unchanged" in out
    assert "replaced 1 changed files" in out and f"old ids {old_id} removed" in out
    after = _records_by_path(index_copy)
    [(new_id, new_sha)] = after[str(a.resolve())]
    assert new_id > old_id and new_sha != old_sha
    assert {p: r for p, r in after.items() if p != str(a.resolve())} == {
        p: r for p, r in before.items() if p != str(a.resolve())}
    hit = run_search(capsys, index_copy, a)
    assert hit["id"] == new_id and hit["score"] == pytest.approx(1.0, abs=1e-5)


def run_search(capsys: pytest.CaptureFixture[str], index: Path, query: Path) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["search", "--index", str(index), str(query), "-k", "1", "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)["results"][0]
    return result


def test_adding_to_an_untrained_ivf_stores_and_says_it_waits(
    empty_ivf: Path, image_folder: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = sorted(image_folder.rglob("img0*"))[:3]
    with caplog.at_level(logging.WARNING):
        assert main(["index", "add", "--index", str(empty_ivf), *map(str, files),
                     "--no-progress"]) == 0
    assert "added, but not searchable yet" in caplog.text
    with ImageIndex.open(empty_ivf, read_only=True) as index:
        assert index.count == 3 and not index.is_trained
