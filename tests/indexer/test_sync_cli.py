"""``cbir index sync``: one reconcile of a folder with its index — new files added, vanished ones
removed, edited ones re-embedded, moved ones (files and folders) re-pointed without embedding."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main
from indexer.watch import STAMPS_NAME
from retrieval import sha256_hex
from retrieval.index import AugmentsVectors, KeepsGraph, open_index
from tests.indexer.watching import BUILD, files, folder_and_index, photo, stored


def sync(images: Path, index: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["index", "sync", "--images", str(images), "--index", str(index), "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def vectors_of(index: Path, ids: list[int]) -> np.ndarray:
    with open_index(index, read_only=True) as opened:
        return opened.stored_vectors(ids)


def test_sync_adds_removes_edits_and_moves(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    images, index = folder_and_index(tmp_path, n=6)
    before = stored(index)
    r = lambda name: str((images / name).resolve())  # noqa: E731
    moved_id = before[r("p01.jpg")][0]
    in_folder_id = before[r("p02.jpg")][0]
    moved_vector = vectors_of(index, [moved_id[0]])
    photo(images / "new.jpg", 900)                                   # new
    (images / "p00.jpg").unlink()                                    # vanished
    photo(images / "p03.jpg", 901)                                   # edited in place
    (images / "sub").mkdir()
    (images / "p01.jpg").rename(images / "sub" / "renamed.jpg")      # moved file
    (images / "box").mkdir()
    (images / "p02.jpg").rename(images / "box" / "p02.jpg")
    (images / "box").rename(images / "box2")                         # moved folder
    shutil.copy(images / "p04.jpg", images / "copy-of-p04.jpg")      # a copy: its own record
    (images / "notes.txt").write_text("not an image")

    summary = sync(images, index, capsys)
    assert {k: summary[k] for k in ("added", "reembedded", "moved", "removed", "unchanged",
                                    "failed")} == {"added": 2, "reembedded": 1, "moved": 2,
                                                   "removed": 1, "unchanged": 2, "failed": 0}
    after = stored(index)
    assert set(after) == files(images) and all(len(v) == 1 for v in after.values())
    assert after[r("sub/renamed.jpg")] == [moved_id]           # same id, sha256, added_at
    assert after[r("box2/p02.jpg")] == [in_folder_id]
    np.testing.assert_array_equal(vectors_of(index, [moved_id[0]]), moved_vector)
    edited = after[r("p03.jpg")][0]
    assert edited[0] not in {i for v in before.values() for i, _, _ in v}
    assert edited[1] == sha256_hex((images / "p03.jpg").read_bytes())
    assert sorted(summary["added_ids"]) == sorted(  # type: ignore[type-var]
        [after[r("new.jpg")][0][0], after[r("copy-of-p04.jpg")][0][0], edited[0]])

    again = sync(images, index, capsys)
    assert (again["added"], again["moved"], again["removed"], again["reembedded"],
            again["unchanged"]) == (0, 0, 0, 0, 7)
    assert stored(index) == after


def index_state(index: Path) -> tuple[object, ...]:
    """Records, vectors (raw and searched), counts and kept graph of an index, read as a keyless
    server reads them."""
    with open_index(index, read_only=True) as opened:
        assert isinstance(opened, KeepsGraph) and isinstance(opened, AugmentsVectors)
        ids = opened.ids_after(0, 100_000)
        graph = opened.neighbours(ids)
        return (opened.records(ids), opened.stored_vectors(ids).tobytes(), opened.count,
                opened.ntotal, opened.indexed_vectors(ids).tobytes(), graph.I.tobytes(),
                graph.D.tobytes())


def test_a_batch_whose_commit_fails_leaves_the_moves_undone_and_is_applied_whole_next_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trigger makes the first INSERT of new records fail inside the batch's transaction (as a
    full disk would): the re-point, removal and replacement committed in it are rolled back too,
    kept graph and DBA vectors included; the next sync plans and applies the same batch."""
    images = tmp_path / "photos"
    for i in range(5):
        photo(images / f"p{i:02d}.jpg", 720 + i)
    index = tmp_path / "index"
    assert main(["index", "build", "--images", str(images), "--index", str(index), *BUILD,
                 "--dba", "2", "--graph-k", "3"]) == 0
    before, state = stored(index), index_state(index)
    r = lambda name: str((images / name).resolve())  # noqa: E731
    (images / "p01.jpg").rename(images / "p01-moved.jpg")
    (images / "p02.jpg").unlink()
    photo(images / "p03.jpg", 990)
    photo(images / "new.jpg", 991)
    with sqlite3.connect(index / "store.sqlite") as db:
        db.execute("CREATE TRIGGER injected BEFORE INSERT ON images "
                   "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        main(["index", "sync", "--images", str(images), "--index", str(index), "--json"])
    assert stored(index) == before and index_state(index) == state
    with sqlite3.connect(index / "store.sqlite") as db:
        db.execute("DROP TRIGGER injected")
    summary = sync(images, index, capsys)
    assert (summary["added"], summary["reembedded"], summary["moved"], summary["removed"],
            summary["unchanged"], summary["failed"]) == (1, 1, 1, 1, 2, 0)
    after = stored(index)
    assert set(after) == files(images) and after[r("p01-moved.jpg")] == before[r("p01.jpg")]


def test_sync_prints_one_summary_line_and_keeps_stamps(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    images, index = folder_and_index(tmp_path, n=3)
    photo(images / "x.jpg", 950)
    capsys.readouterr()
    assert main(["index", "sync", "--images", str(images), "--index", str(index)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"synced {images} into {index}: 1 added, ")
    stamps = json.loads((index / STAMPS_NAME).read_text())["files"]
    assert set(stamps) == files(images)
    assert stamps[str((images / "x.jpg").resolve())][2] == sha256_hex(
        (images / "x.jpg").read_bytes())


def test_sync_leaves_records_outside_the_folder_and_the_index_inside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, index = folder_and_index(tmp_path, n=2)
    elsewhere = photo(tmp_path / "elsewhere" / "e.jpg", 960)
    assert main(["index", "add", "--index", str(index), str(elsewhere), "--no-progress"]) == 0
    inner = images / "nested-index"
    shutil.copytree(index, inner, ignore=shutil.ignore_patterns("lock"))
    photo(inner / "data" / "upload.jpg", 961)  # an upload kept inside the index directory
    summary = sync(images, inner, capsys)
    assert (summary["added"], summary["removed"]) == (0, 0)
    assert str(elsewhere.resolve()) in stored(inner)


def test_sync_of_a_missing_folder_is_one_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _, index = folder_and_index(tmp_path, n=1)
    capsys.readouterr()
    assert main(["index", "sync", "--images", str(tmp_path / "nope"), "--index", str(index)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_an_unreadable_file_is_reported_once_then_again_when_it_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, index = folder_and_index(tmp_path, n=2)
    bad = images / "half-written.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not yet a whole jpeg")
    first = sync(images, index, capsys)
    assert (first["added"], first["failed"]) == (0, 1)
    assert first["failed_files"] == [str(bad.resolve())]
    assert "half-written.jpg" in (index / "skipped.log").read_text()
    again = sync(images, index, capsys)
    assert (again["added"], again["failed"]) == (0, 0)  # unchanged since: not tried again
    photo(bad, 970)
    fixed = sync(images, index, capsys)
    assert (fixed["added"], fixed["failed"]) == (1, 0)
    assert str(bad.resolve()) in stored(index)


def test_sync_on_a_milvus_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No replace in one transaction there: the new record is added, then the old removed; a
    move is an upsert of the stored row."""
    pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
    pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")
    images = tmp_path / "photos"
    for i in range(4):
        photo(images / f"q{i}.jpg", 1200 + i)
    index = tmp_path / "index"
    assert main(["index", "build", "--images", str(images), "--index", str(index), *BUILD,
                 "--store", "milvus", "--milvus-uri", str(tmp_path / "m.db"),
                 "--collection", "synced"]) == 0
    before = stored(index)
    photo(images / "q0.jpg", 1300)
    (images / "q1.jpg").rename(images / "q1-moved.jpg")
    (images / "q2.jpg").unlink()
    photo(images / "q9.jpg", 1301)
    summary = sync(images, index, capsys)
    assert (summary["added"], summary["reembedded"], summary["moved"], summary["removed"],
            summary["unchanged"]) == (1, 1, 1, 1, 1)
    after = stored(index)
    assert set(after) == files(images) and all(len(v) == 1 for v in after.values())
    moved = after[str((images / "q1-moved.jpg").resolve())][0]
    assert moved == before[str((images / "q1.jpg").resolve())][0]
    assert sync(images, index, capsys)["unchanged"] == 4
