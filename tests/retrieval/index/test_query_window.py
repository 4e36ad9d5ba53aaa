"""Search windows and id pages on both engines: ``offset`` is the tail of the longer search,
``min_score`` drops exactly the hits below it, ``ids_after`` pages are slices of the sorted ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import ConfigError
from retrieval.index import IndexStore, create_index, search_hits, similar_hits
from tests.retrieval.index.samples import images, lite_or_faiss, manifest, unit_vectors


@pytest.fixture(params=["faiss", "milvus"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    index = create_index(tmp_path / "idx", manifest(), lite_or_faiss(request.param, tmp_path))
    index.add(images(60), unit_vectors(60, 0))
    try:
        yield index
    finally:
        index.close()


@pytest.mark.parametrize("qe", [0, 3])
def test_offset_is_the_tail_of_the_longer_search(store: IndexStore, qe: int) -> None:
    xq = unit_vectors(4, 1)
    longer = search_hits(store, xq, 12, qe_k=qe)
    for offset in (0, 1, 5, 9):
        window = search_hits(store, xq, 12 - offset, qe_k=qe, offset=offset)
        assert [[(h.id, h.score) for h in row] for row in window] == \
            [[(h.id, h.score) for h in row[offset:]] for row in longer]
    tail = similar_hits(store, 7, 4, offset=3)
    assert [h.id for h in tail] == [h.id for h in similar_hits(store, 7, 7)][3:]
    assert 7 not in [h.id for h in similar_hits(store, 7, 59, offset=1)]


def test_min_score_drops_exactly_the_hits_below(store: IndexStore) -> None:
    xq = unit_vectors(3, 2)
    every = search_hits(store, xq, 60)
    threshold = float(np.median([h.score for h in every[0]]))
    kept = search_hits(store, xq, 60, min_score=threshold)
    assert [[h.id for h in row] for row in kept] == \
        [[h.id for h in row if h.score >= threshold] for row in every]
    assert 0 < len(kept[0]) < 60


def test_a_printed_score_as_min_score_keeps_its_hit(store: IndexStore) -> None:
    """Scores are float32: the shortest text of a score (what ``cbir search --json`` prints),
    read back as a threshold, keeps that hit and every better one, whichever way the text rounds."""
    xq = unit_vectors(1, 4)
    every = search_hits(store, xq, 60)[0]
    for rank, hit in enumerate(every):
        printed = float(str(np.float32(hit.score)))
        kept = search_hits(store, xq, 60, min_score=printed)[0]
        assert [h.id for h in kept][:rank + 1] == [h.id for h in every][:rank + 1]


def test_offset_past_the_end_and_bad_values(store: IndexStore) -> None:
    assert search_hits(store, unit_vectors(1, 3), 5, offset=60) == [[]]
    with pytest.raises(ConfigError, match="offset"):
        search_hits(store, unit_vectors(1, 3), 5, offset=-1)


def test_id_pages_are_slices_of_the_sorted_ids(store: IndexStore) -> None:
    store.remove([3, 4, 5, 30])
    every = sorted(r.id for r in store.records(list(range(1, 100))))
    assert len(every) == 56
    paged, cursor = [], 0
    while page := store.ids_after(cursor, 7):
        assert page == sorted(page) and len(page) <= 7
        paged.extend(page)
        cursor = page[-1]
    assert paged == every
    assert store.ids_after(every[10], 5) == every[11:16]
    assert store.ids_after(every[-1], 5) == []
