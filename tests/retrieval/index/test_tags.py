"""Tags on both engines: edits in one call (all or none), metadata only (vectors and rankings
unchanged), counts by tag and by folder equal what the records say; an index directory made
before tags opens (read-only: no tags; writable: the table is added)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from retrieval.errors import ConfigError, NotFoundError
from retrieval.index import (
    STORE_NAME,
    ImageIndex,
    IndexStore,
    KeepsTags,
    KnowsSources,
    NewImage,
    RecordFilter,
    TagEdit,
    clean_folder,
    clean_tags,
    create_index,
    folder_counts,
    folder_of,
    folder_tree,
    matching_ids,
    open_index,
    source_roots,
    tag_counts,
)
from tests.retrieval.index.samples import lite_or_faiss, manifest, unit_vectors

N = 12
PATHS = ["/p/a/1.jpg", "/p/a/2.jpg", "/p/a/b/3.jpg", "/p/c/4.jpg", "/up/5.jpg", "/p/6.jpg"]


@pytest.fixture(params=["faiss", "milvus"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    index = create_index(tmp_path / "idx", manifest(), lite_or_faiss(request.param, tmp_path))
    assert isinstance(index, KnowsSources)
    index.set_images_root("/p")
    items = [NewImage(PATHS[i % len(PATHS)].replace(".jpg", f"_{i}.jpg"), f"{i:064x}", 8, 8,
                      clean_tags(["even"] if i % 2 == 0 else []))
             for i in range(N)]
    index.add(items, unit_vectors(N, 1))
    try:
        yield index
    finally:
        index.close()


def test_edits_add_remove_replace_and_keep_vectors(store: IndexStore) -> None:
    assert isinstance(store, KeepsTags)
    xq = unit_vectors(2, 5)
    before_scores, before_ids = store.search(xq, 5)
    vectors = store.stored_vectors(list(range(1, N + 1)))
    out = store.retag([1, 2, 3], TagEdit.of(add=["sea", " red "]))
    assert [r.tags for r in out] == [("even", "red", "sea"), ("red", "sea"),
                                     ("even", "red", "sea")]
    store.retag([1, 2], TagEdit.of(remove=["sea", "even"]))
    store.retag([3], TagEdit.of(replace=["only"]))
    assert [r.tags for r in store.records([1, 2, 3, 4])] == [("red",), ("red",), ("only",), ()]
    assert tag_counts(store) == {"even": 4, "only": 1, "red": 2}
    assert matching_ids(store, RecordFilter(tags=("red",))) == [1, 2]
    with pytest.raises(NotFoundError, match="999"):
        store.retag([4, 999], TagEdit.of(add=["lost"]))
    assert store.get(4).tags == ()  # all or nothing
    after_scores, after_ids = store.search(xq, 5)
    assert np.array_equal(before_ids, after_ids)
    assert np.allclose(before_scores, after_scores, atol=1e-6)
    assert np.array_equal(store.stored_vectors(list(range(1, N + 1))), vectors)


def test_counts_equal_the_records(store: IndexStore) -> None:
    records = store.records(list(range(1, N + 1)))
    assert tag_counts(store) == dict(Counter(t for r in records for t in r.tags))
    folders = folder_counts(store)
    direct = Counter(PurePosixPath(r.path).parent.as_posix() for r in records)
    expected = folder_tree(dict(direct), "/p")
    assert folders == expected
    table = {f.folder: (f.images, f.under) for f in folders.folders}
    assert table == {".": (2, 10), "a": (4, 6), "a/b": (2, 2), "c": (2, 2)}
    assert folders.elsewhere == 2
    for f in folders.folders:  # `under` is what the folder filter returns
        assert len(matching_ids(store, RecordFilter(folder=f.folder))) == f.under


def test_a_second_root_names_the_same_folders(store: IndexStore) -> None:
    # "/up" as the uploads folder: its images are in the root folder, as those of "/p"
    records = store.records(list(range(1, N + 1)))
    folders = folder_counts(store, ("/up",))
    table = {f.folder: (f.images, f.under) for f in folders.folders}
    assert table == {".": (4, 12), "a": (4, 6), "a/b": (2, 2), "c": (2, 2)}
    assert folders.elsewhere == 0
    roots = source_roots(store, ("/up",))
    assert roots == ("/p", "/up")
    got = Counter("." if r.folder_in(roots) == "" else r.folder_in(roots) for r in records)
    assert got == {f.folder: f.images for f in folders.folders if f.images}
    for f in folders.folders:
        where = RecordFilter(folder=f.folder, roots=("/up",))
        found = matching_ids(store, where)
        assert len(found) == f.under
        assert found == [r.id for r in records if where.matches(r, "/p")]  # the scan agrees
    assert matching_ids(store, RecordFilter(folder="a", roots=("/up",))) == \
        matching_ids(store, RecordFilter(folder="a"))
    assert [r.folder_in(("/p",)) for r in records[:6]] == ["a", "a", "a/b", "c", None, ""]


def test_folder_names() -> None:
    assert folder_of("/r/a/b/x.jpg", ("/r",)) == "a/b"
    assert folder_of("/r/x.jpg", ("/r",)) == ""
    assert folder_of("/s/x.jpg", ("/r",)) is None
    assert folder_of("/r/up/x/y.jpg", ("/r", "/r/up")) == "x"  # the innermost root
    assert folder_of("/r/up/x/y.jpg", ("/r/up", "/r")) == "x"
    assert clean_folder("a/./b//") == "a/b" and clean_folder(".") == clean_folder("") == ""
    for bad, words in (("../a", "'..'"), ("a/../b", "'..'"), ("/a", "relative"),
                       ("a\nb", "control")):
        with pytest.raises(ConfigError, match=words):
            clean_folder(bad)


def test_bad_tags_are_refused() -> None:
    for bad in (["a,b"], [""], ["x" * 65], ["tab\there"], "solo"):
        with pytest.raises(ConfigError):
            clean_tags(bad)
    with pytest.raises(ConfigError, match="both"):
        TagEdit.of(add=["a"], remove=["a"])
    with pytest.raises(ConfigError, match="not both"):
        TagEdit.of(add=["a"], replace=["b"])
    with pytest.raises(ConfigError, match="at most"):
        TagEdit.of(add=[f"t{i}" for i in range(65)])


def _make_old(path: Path) -> None:
    """An index directory as made before tags: no tags table, no trigger."""
    with ImageIndex.create(path, manifest()) as index:
        index.add([NewImage("/p/1.jpg", "1" * 64, 8, 8)], unit_vectors(1, 0))
    conn = sqlite3.connect(path / STORE_NAME)
    conn.executescript("DROP TRIGGER tags_follow_images; DROP TABLE tags;")
    conn.close()


def test_an_index_made_before_tags_opens(tmp_path: Path) -> None:
    _make_old(tmp_path / "old")
    with open_index(tmp_path / "old", read_only=True) as index:
        assert index.get(1).tags == ()
        assert matching_ids(index, RecordFilter(tags=("a",))) == []
        assert tag_counts(index) == {}
        assert isinstance(index, KeepsTags)
        with pytest.raises(ConfigError, match="read-only"):
            index.retag([1], TagEdit.of(add=["a"]))
    with open_index(tmp_path / "old") as index:
        assert isinstance(index, KeepsTags)
        assert index.retag([1], TagEdit.of(add=["a"]))[0].tags == ("a",)
        assert index.remove([1]) == [1]
        assert tag_counts(index) == {}  # the trigger follows removals


def test_milvus_reads_past_one_query(store: IndexStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """More matching rows than one Milvus query returns: the iterator reads them all."""
    if isinstance(store, ImageIndex):
        pytest.skip("a Milvus reading path")
    from retrieval.index.milvus import _metadata

    want = (matching_ids(store, RecordFilter(tags=("even",))), tag_counts(store),
            folder_counts(store))
    monkeypatch.setattr(_metadata, "QUERY_LIMIT", 2)
    assert (matching_ids(store, RecordFilter(tags=("even",))), tag_counts(store),
            folder_counts(store)) == want
    assert len(want[0]) == N // 2
