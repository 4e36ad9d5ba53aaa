"""Filtered search on both engines: random folder, time and tag filters give what an exact search
among the matching images gives (k of them when at least k match), before and after αQE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import ConfigError
from retrieval.index import (
    ImageIndex,
    IndexStore,
    KnowsSources,
    NewImage,
    RecordFilter,
    clean_tags,
    create_index,
    matching_ids,
    scanned_ids,
    search_hits,
    similar_hits,
)
from retrieval.index.local import _reads
from tests.retrieval.index.samples import brute_force, lite_or_faiss, manifest, unit_vectors

FOLDERS = ["a", "a/x", "ab", "b", "b/y/z"]
TAGS = ["red", "blue", "sea", "été", "x y"]
N = 80


def random_tags(rng: np.random.Generator) -> tuple[str, ...]:
    return clean_tags(t for t in TAGS if rng.random() < 0.4)


@pytest.fixture(params=["faiss", "faiss-selector", "milvus"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexStore]:
    """``faiss-selector``: every filtered search scans the Flat index with an id selector (the
    path of many matching ids), instead of reading the matches' vectors from the store."""
    if request.param == "faiss-selector":
        monkeypatch.setattr(_reads, "SELECTOR_MIN_IDS", 0)
    engine = request.param.removesuffix("-selector")
    index = create_index(tmp_path / "idx", manifest(), lite_or_faiss(engine, tmp_path))
    assert isinstance(index, KnowsSources)
    index.set_images_root("/photos")
    rng = np.random.default_rng(0)
    items = [NewImage(f"/photos/{FOLDERS[int(rng.integers(len(FOLDERS)))]}/{i}.jpg",
                      f"{i:064x}", 64, 48, random_tags(rng)) for i in range(N)]
    for start in range(0, N, 20):  # four adds: four added_at times
        index.add(items[start:start + 20], unit_vectors(N, 0)[start:start + 20])
    try:
        yield index
    finally:
        index.close()


def test_the_selector_path_is_taken(store: IndexStore, request: pytest.FixtureRequest) -> None:
    if not isinstance(store, ImageIndex):
        pytest.skip("Milvus filters by expressions")
    selector = request.node.callspec.params["store"] == "faiss-selector"
    assert _reads._scan_with_selector(store._live, 10) is selector


def expected_ids(index: IndexStore, where: RecordFilter) -> list[int]:
    return [r.id for r in index.records(list(range(1, N + 1))) if where.matches(r, "/photos")]


def test_folder_is_a_path_prefix(store: IndexStore) -> None:
    records = store.records(list(range(1, N + 1)))
    under_a = {r.id for r in records if r.path.startswith(("/photos/a/", "/photos/a/x/"))}
    assert set(matching_ids(store, RecordFilter(folder="a"))) == under_a
    assert set(matching_ids(store, RecordFilter(folder="ab"))).isdisjoint(under_a)
    assert set(matching_ids(store, RecordFilter(folder="a/"))) == under_a
    assert set(matching_ids(store, RecordFilter(folder="/photos/b/y"))) == \
        {r.id for r in records if r.path.startswith("/photos/b/y/")}
    assert matching_ids(store, RecordFilter(folder="nowhere")) == []
    with pytest.raises(ConfigError, match=r"\.\."):
        RecordFilter(folder="../etc")


@pytest.mark.parametrize("seed", range(10))
def test_random_filters_equal_exact_search_among_the_matches(store: IndexStore,
                                                             seed: int) -> None:
    rng = np.random.default_rng(seed)
    times = sorted({r.added_at for r in store.records(list(range(1, N + 1)))})
    folder = [None, *FOLDERS][int(rng.integers(len(FOLDERS) + 1))]
    after = times[int(rng.integers(len(times)))] if rng.random() < 0.5 else None
    # added_before: one of the add times (that add excluded) or past them all, later than after
    later = [t for t in times if after is None or t > after] + [times[-1] + 1.0]
    before = later[int(rng.integers(len(later)))] if rng.random() < 0.5 else None
    tags = [t for t in TAGS if rng.random() < 0.3]
    where = RecordFilter(folder=folder, added_after=after, added_before=before, tags=tuple(tags))
    among = expected_ids(store, where)
    assert matching_ids(store, where) == among == scanned_ids(store, where, "/photos")
    xq, xb = unit_vectors(3, seed + 10), unit_vectors(N, 0)
    k = 5
    hits = search_hits(store, xq, k, qe_k=0, where=where)
    if not among:
        assert hits == [[], [], []]
        return
    scores, labels = brute_force(np.asarray(among), xb[np.asarray(among) - 1], xq, k)
    assert [[h.id for h in row] for row in hits] == labels.tolist()
    assert np.allclose([[h.score for h in row] for row in hits], scores, atol=1e-5)
    assert all(len(row) == min(k, len(among)) for row in hits)
    with_qe = search_hits(store, xq, k, qe_k=3, where=where)
    assert all(h.id in among for row in with_qe for h in row)
    if len(among) > 1:
        similar = similar_hits(store, among[0], k, where=where)
        assert {h.id for h in similar} <= set(among) - {among[0]}


def test_time_range_bounds(store: IndexStore) -> None:
    times = sorted({r.added_at for r in store.records(list(range(1, N + 1)))})
    if len(times) < 2:
        pytest.skip("the adds got the same clock reading")
    where = RecordFilter(added_after=times[0], added_before=times[-1])
    assert matching_ids(store, where) == expected_ids(store, where)
    with pytest.raises(ConfigError, match="later"):
        RecordFilter(added_after=5.0, added_before=5.0)


def test_tag_filters_need_every_tag(store: IndexStore) -> None:
    records = store.records(list(range(1, N + 1)))
    assert all(r.tags == clean_tags(r.tags) for r in records)
    both = {r.id for r in records if {"red", "sea"} <= set(r.tags)}
    assert both and set(matching_ids(store, RecordFilter(tags=("sea", "red", "red")))) == both
    assert matching_ids(store, RecordFilter(tags=("unknown",))) == []
    with pytest.raises(ConfigError, match="comma"):
        RecordFilter(tags=("a,b",))
