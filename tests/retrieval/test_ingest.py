"""``ingest`` in its all-or-nothing mode (``unique=``, what HTTP adds run): one batched embed, one
``add_unique`` in input order, content dedupe, request keys, the first bad input refusing all;
and what rides on an atomic ingest's one transaction (``removing=``, ``repointing=``: a sync
batch)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from retrieval import (
    Collection,
    ConfigError,
    Embedder,
    EmbedderConfig,
    StorageFullError,
    UniqueAdd,
    UnsupportedImageError,
    create_collection,
    ingest,
    load_image,
    sync_folder,
)
from retrieval.features import Decoded
from tests.conftest import scene
from tests.indexer.watching import photo


def png(seed: int, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    scene(seed, size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def collection(tmp_path: Path) -> Collection:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64)
    return create_collection(tmp_path / "index", Embedder.create(config))


def placed(item: Decoded[str]) -> str:
    return f"{item.position}-{item.key}{item.suffix}"


def test_unique_add_commits_once_in_input_order(collection: Collection) -> None:
    # two sizes, batches of two: the extraction regroups them, the commit restores input order
    datas = [png(1, (64, 48)), png(2, (48, 64)), png(3, (64, 48)), png(1, (64, 48))]
    sources = [(f"u{i}", d) for i, d in enumerate(datas)]
    try:
        report = ingest(collection, sources, batch_size=2, unique=UniqueAdd(placed))
        outcome = report.outcome
        assert outcome is not None and not outcome.replayed
        assert [a.duplicate for a in outcome.added] == [False, False, False, True]
        records = collection.index.records(outcome.new_ids)
        assert [r.path for r in records] == ["0-u0.png", "1-u1.png", "2-u2.png"]
        assert outcome.added[3].id == outcome.added[0].id  # the same content, one record
        assert report.added == outcome.new_ids and report.added_keys == [r.path for r in records]
        queries = collection.embedder.embed_images([load_image(d) for d in datas[:3]])
        stored = collection.index.stored_vectors(outcome.new_ids)
        np.testing.assert_allclose(stored, queries, atol=1e-5)  # batched: float sums reorder
    finally:
        collection.close()


def test_unique_add_replays_its_request_key(collection: Collection) -> None:
    unique = UniqueAdd(placed, request_key="k1", fingerprint="f")
    try:
        first = ingest(collection, [("a", png(5, (64, 64)))], unique=unique).outcome
        again = ingest(collection, [("a", png(5, (64, 64)))], unique=unique).outcome
        assert first is not None and again is not None and again.replayed
        assert [a.id for a in again.added] == [a.id for a in first.added]
        assert collection.index.count == 1
    finally:
        collection.close()


def test_one_bad_input_adds_nothing(collection: Collection) -> None:
    calls: list[str] = []

    def place(item: Decoded[str]) -> str:
        calls.append(item.key)
        return item.key

    sources = [("ok.png", png(7, (64, 48))), ("bad.jpg", b"not an image")]
    try:
        with pytest.raises(UnsupportedImageError, match=r"bad\.jpg"):
            ingest(collection, sources, unique=UniqueAdd(place))
        assert collection.index.count == 0 and calls == []  # nothing placed, nothing stored
    finally:
        collection.close()


def test_removing_commits_with_the_adds_in_one_change_batch(collection: Collection) -> None:
    """``removing=``: the ids go with the adds (one ``replace``: the change log holds the removal
    then the add, nothing between), and alone when nothing could be decoded."""
    try:
        first = ingest(collection, [("a", png(5, (64, 48))), ("b", png(6, (64, 48)))],
                       atomic=True)
        store = collection.index.store  # type: ignore[attr-defined]
        seq = store.last_seq()
        report = ingest(collection, [("c", png(7, (64, 48)))], atomic=True,
                        removing=[first.added[0]])
        changes = list(store.changes_since(seq))
        assert [(c.op, c.image_id) for c in changes] == [("remove", first.added[0]),
                                                         ("add", report.added[0])]
        assert report.replaced == [first.added[0]]
        alone = ingest(collection, [("bad", b"not an image")], atomic=True,
                       removing=[first.added[1]])
        assert alone.added == [] and alone.replaced == [first.added[1]]
        assert len(alone.failures) == 1 and collection.index.count == 1
        with pytest.raises(ConfigError, match="atomic"):
            ingest(collection, [], removing=[report.added[0]])
        with pytest.raises(ConfigError, match="atomic"):
            ingest(collection, [], repointing={report.added[0]: "x"})
    finally:
        collection.close()


def snapshot_of(collection: Collection) -> tuple[object, ...]:
    """Everything a failed batch must leave as it was: records (paths, content, times), raw and
    searched vectors, counts, the change log's end."""
    index = collection.index
    ids = index.ids_after(0, 10_000)
    return (index.records(ids), index.stored_vectors(ids).tobytes(), index.count, index.ntotal,
            index.search(index.stored_vectors(ids), 3)[1].tobytes(),
            index.store.last_seq())  # type: ignore[attr-defined]


def test_a_failed_commit_leaves_the_re_points_undone_too(collection: Collection) -> None:
    """The store runs out of room (SQLite's own size limit: SQLITE_FULL) while adding: the
    re-point and the removal in the same transaction are rolled back with the adds; the same
    batch then commits whole."""
    try:
        first = ingest(collection, [(f"p{i}", png(i, (64, 48))) for i in range(3)], atomic=True)
        moved, gone = first.added[0], first.added[1]
        before = snapshot_of(collection)
        db = collection.index.store._db()  # type: ignore[attr-defined]
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        batch = [(f"n{i}", png(20 + i, (64, 48))) for i in range(8)]
        with pytest.raises(StorageFullError):
            ingest(collection, batch, atomic=True, removing=[gone],
                   repointing={moved: "moved/p0"})
        assert snapshot_of(collection) == before
        db.execute("PRAGMA max_page_count = 1000000")
        report = ingest(collection, batch, atomic=True, removing=[gone],
                        repointing={moved: "moved/p0"})
        assert len(report.added) == 8 and report.replaced == [gone]
        assert collection.index.get(moved).path == "moved/p0"
        assert collection.index.count == 3 - 1 + 8
    finally:
        collection.close()


def test_a_sync_batch_of_moves_only_is_one_commit(collection: Collection,
                                                  tmp_path: Path) -> None:
    images = tmp_path / "photos"
    for i in range(3):
        photo(images / f"p{i}.jpg", 800 + i)
    stamps = tmp_path / "stamps.json"
    try:
        sync_folder(collection, images, stamps)
        index = collection.index
        ids = index.ids_after(0, 100)
        vectors = index.stored_vectors(ids)
        (images / "sub").mkdir()
        (images / "p0.jpg").rename(images / "sub" / "p0.jpg")
        (images / "p1.jpg").rename(images / "p1-renamed.jpg")
        statements: list[str] = []
        store = index.store  # type: ignore[attr-defined]
        seq = store.last_seq()
        store._db().set_trace_callback(statements.append)
        try:
            report, _ = sync_folder(collection, images, stamps)
        finally:
            store._db().set_trace_callback(None)
        assert (report.plan.counts()["moved"], report.ingest.added) == (2, [])
        assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
            "BEGIN IMMEDIATE", "COMMIT"]
        assert sorted(r.path for r in index.records(ids)) == sorted(
            str((images / name).resolve()) for name in ("sub/p0.jpg", "p1-renamed.jpg", "p2.jpg"))
        assert index.ids_after(0, 100) == ids and store.last_seq() == seq  # nothing logged
        np.testing.assert_array_equal(index.stored_vectors(ids), vectors)
    finally:
        collection.close()
