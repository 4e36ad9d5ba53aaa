"""Tests for store: records and vectors in SQLite, ids never reused, the change log, a full
disk (a real, small tmpfs) refused whole and writes resuming once space is freed."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from retrieval.errors import ArtifactError, ConfigError, NotFoundError, StorageFullError
from retrieval.index import STORE_NAME, NewImage, Store
from retrieval.index.local._schema import connect
from retrieval.index.local._store import Change
from tests.small_disk import fill, small_disk

D = 8


def vectors(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def images(n: int, start: int = 0) -> list[NewImage]:
    return [NewImage(f"photos/{i:04d}.jpg", f"{i:064x}", 100 + i, 50) for i in range(start,
                                                                                    start + n)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.create(tmp_path / STORE_NAME, dim=D)
    yield s
    s.close()


def test_add_get_and_vectors_round_trip(store: Store) -> None:
    xb = vectors(5)
    ids = store.add(images(5), xb)
    assert ids == [1, 2, 3, 4, 5]
    records = store.get([4, 99, 2])
    assert [(r.id, r.path, r.width, r.height) for r in records] == [
        (4, "photos/0003.jpg", 103, 50), (2, "photos/0001.jpg", 101, 50)]
    assert records[0].sha256 == f"{3:064x}"
    assert np.array_equal(store.vectors([5, 1, 5]), xb[[4, 0, 4]])
    assert store.vectors([]).shape == (0, D)
    assert store.count() == 5
    assert store.paths_present() == {f"photos/{i:04d}.jpg" for i in range(5)}
    assert [r.id for r in store.find_by_sha256(f"{2:064x}")] == [3]


def test_get_one_and_vectors_of_missing_ids(store: Store) -> None:
    store.add(images(1), vectors(1))
    assert store.get_one(1).path == "photos/0000.jpg"
    with pytest.raises(NotFoundError, match="42"):
        store.get_one(42)
    with pytest.raises(NotFoundError, match="42"):
        store.vectors([1, 42])


def test_iter_all_pages_in_id_order(store: Store) -> None:
    xb = vectors(7)
    store.add(images(7), xb)
    store.remove([3])
    pages = list(store.iter_all(batch=3))
    assert [len(ids) for ids, _ in pages] == [3, 3]
    ids = np.concatenate([ids for ids, _ in pages])
    assert ids.tolist() == [1, 2, 4, 5, 6, 7]
    assert np.array_equal(np.concatenate([x for _, x in pages]), xb[ids - 1])
    assert store.ids().tolist() == ids.tolist()


def test_ids_are_never_reused(tmp_path: Path, store: Store) -> None:
    store.add(images(3), vectors(3))
    assert store.remove([3, 2]) == [3, 2]
    assert store.add(images(1, 3), vectors(1)) == [4]
    store.remove([4])
    store.close()
    reopened = Store.open(tmp_path / STORE_NAME, dim=D)
    assert reopened.add(images(1, 4), vectors(1)) == [5]


def test_remove_ignores_unknown_and_repeated_ids(store: Store) -> None:
    store.add(images(3), vectors(3))
    assert store.remove([2, 77, 2]) == [2]
    assert store.remove([2]) == []
    assert store.count() == 2


def test_change_log(store: Store) -> None:
    assert store.last_seq() == 0
    store.add(images(3), vectors(3))
    store.remove([1, 9])
    store.add(images(1, 3), vectors(1))
    expected = [Change(1, "add", 1), Change(2, "add", 2), Change(3, "add", 3),
                Change(4, "remove", 1), Change(5, "add", 4)]
    assert list(store.changes_since(0, batch=2)) == expected
    assert list(store.changes_since(3)) == expected[3:]
    assert store.last_seq() == 5


def test_prune_keeps_last_seq(store: Store) -> None:
    store.add(images(4), vectors(4))
    assert store.prune_changes(3) == 3
    assert [c.seq for c in store.changes_since(0)] == [4]
    assert (store.last_seq(), store.pruned_through()) == (4, 3)
    store.prune_changes(4)
    assert store.last_seq() == 4 and store.add(images(1), vectors(1)) == [5]


def test_add_validates_before_writing(store: Store) -> None:
    with pytest.raises(ConfigError, match="columns"):
        store.add(images(2), np.zeros((2, D + 1), np.float32))
    with pytest.raises(ConfigError, match="rows"):
        store.add(images(2), vectors(3))
    with pytest.raises(ConfigError, match="NaN"):
        store.add(images(1), np.full((1, D), np.nan))
    with pytest.raises(ConfigError, match="size"):
        store.add([NewImage("a.jpg", "0" * 64, 0, 5)], vectors(1))
    assert (store.count(), store.last_seq()) == (0, 0)


def test_a_failing_batch_leaves_nothing(store: Store) -> None:
    batch = [*images(2), NewImage("huge.jpg", "0" * 64, 2**70, 1)]  # too big for SQLite
    with pytest.raises(OverflowError):
        store.add(batch, vectors(3))
    assert (store.count(), store.last_seq()) == (0, 0)
    assert store.add(images(1), vectors(1)) == [1]


def test_float64_vectors_are_stored_as_float32(store: Store) -> None:
    x = np.random.default_rng(1).standard_normal((2, D))
    store.add(images(2), x)
    assert np.array_equal(store.vectors([1, 2]), x.astype(np.float32))


def test_open_checks_file_and_dimension(tmp_path: Path, store: Store) -> None:
    store.close()
    with pytest.raises(ArtifactError, match="8-d"):
        Store.open(tmp_path / STORE_NAME, dim=16)
    assert Store.open(tmp_path / STORE_NAME).dim == D
    with pytest.raises(ArtifactError, match="missing"):
        Store.open(tmp_path / "nope.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ArtifactError):
        Store.open(tmp_path / "junk.sqlite")
    with pytest.raises(ArtifactError, match="exists"):
        Store.create(tmp_path / STORE_NAME, dim=D)


def test_closed_store_refuses_work(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(ArtifactError, match="closed"):
        store.count()


def test_durable_settings(tmp_path: Path, store: Store) -> None:
    conn = connect(tmp_path / "other.sqlite")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()
    raw = sqlite3.connect(tmp_path / STORE_NAME)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_concurrent_adds_from_threads(store: Store) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for b in range(5):
                store.add(images(4, 100 * t + 4 * b), vectors(4, seed=t))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count() == 80
    assert store.ids().tolist() == list(range(1, 81))
    assert len(list(store.changes_since(0))) == 80


def test_a_full_disk_refuses_changes_whole_and_writes_resume_once_freed(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        store = Store.create(disk / STORE_NAME, dim=D)
        try:
            store.add(images(3), vectors(3))
            filler = fill(disk)
            with pytest.raises(StorageFullError, match=r"store\.sqlite.*full"):
                store.add(images(50, 3), vectors(50, seed=1))
            with pytest.raises(StorageFullError):
                store.remove([1])
            with pytest.raises(StorageFullError):
                store.add_unique(images(1, 60), vectors(1), request_key="k", fingerprint="f")
            assert (store.count(), store.last_seq(), store.ids().tolist()) == (3, 3, [1, 2, 3])
            assert store.saved_outcome("k", "f") is None
            filler.unlink()  # space freed: the same connection writes again, no reopen
            assert store.add(images(50, 3), vectors(50, seed=1)) == list(range(4, 54))
            assert store.remove([1]) == [1]
        finally:
            store.close()
        reopened = Store.open(disk / STORE_NAME, dim=D)
        assert (reopened.count(), reopened.last_seq()) == (52, 54)
        assert np.array_equal(reopened.vectors([4, 53]), vectors(50, seed=1)[[0, 49]])
        reopened.close()


def test_the_database_size_limit_is_a_storage_full_error(store: Store) -> None:
    db = store._db()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLITE_FULL without a full disk
    with pytest.raises(StorageFullError):
        store.add(images(200), vectors(200))
    assert (store.count(), store.last_seq()) == (0, 0)
    db.execute("PRAGMA max_page_count = 1000000")
    assert len(store.add(images(200), vectors(200))) == 200
