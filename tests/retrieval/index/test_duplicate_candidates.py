"""Near-duplicate candidates from the kept graph equal those of a range search, and the graph is
read: only images with at least ``graph_k`` candidates are searched again."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from retrieval.index import DuplicateGroup, ImageIndex, duplicate_page, duplicates_of
from retrieval.index._dup_candidates import candidates
from tests.retrieval.index.test_duplicates import (
    RULE,
    D,
    L,
    manifest,
    near,
    records,
    reference_pairs,
    unit,
)

F32 = npt.NDArray[np.float32]
K = 3  # kept neighbours: fewer than the largest groups' near-duplicates
CAP = 64


def clustered(seed: int = 4) -> tuple[F32, F32]:
    """Groups of 1 to 7 copies (more than K near-duplicates each in the large ones), some
    same-place members (close vectors, other layouts), and loners."""
    rng = np.random.default_rng(seed)
    xb, lb = [], []
    for size in (7, 6, 5, 3, 2, 2, 1, 1, 1):
        g, lay = unit(rng.standard_normal(D)), unit(rng.standard_normal(L))
        xb.append(g)
        lb.append(lay)
        for _ in range(size - 1):
            xb.append(near(g, float(rng.uniform(0.93, 0.995)), rng))
            lb.append(near(lay, float(rng.uniform(0.9, 0.99) if rng.random() < 0.75
                                      else rng.uniform(0.2, 0.7)), rng))
    return np.stack(xb), np.stack(lb)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ImageIndex, ImageIndex, list[int], F32, F32]]:
    """The same collection with a kept graph of K neighbours and without a graph."""
    xb, lb = clustered()
    with_graph = dataclasses.replace(manifest(), graph_k=K)
    with ImageIndex.create(tmp_path / "graph", with_graph) as kept, \
            ImageIndex.create(tmp_path / "plain", manifest()) as plain:
        ids = kept.add(records(len(xb)), xb, lb)
        assert plain.add(records(len(xb)), xb, lb) == ids
        yield kept, plain, ids, xb, lb


def groups(index: ImageIndex) -> list[tuple[list[int], list[tuple[int, int, float, float]]]]:
    out: list[DuplicateGroup] = []
    cursor = 0
    while True:
        page = duplicate_page(index, RULE, cursor=cursor, limit=2, scan=4)
        out += page.groups
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return [(g.members, [(p.a, p.b, round(p.score, 5), round(p.global_score, 5))
                         for p in g.pairs]) for g in out]


def brute(ids: list[int], xb: F32, threshold: float) -> dict[int, list[int]]:
    """Each image's others at or above ``threshold``, best first (float64)."""
    x = xb.astype(np.float64)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return {ids[r]: [ids[c] for c in np.argsort(-sims[r], kind="stable")
                     if sims[r, c] >= threshold] for r in range(len(ids))}


def test_graph_duplicates_equal_range_search_duplicates(
        pair: tuple[ImageIndex, ImageIndex, list[int], F32, F32]) -> None:
    kept, plain, ids, xb, lb = pair
    want = reference_pairs(ids, xb, lb, RULE)
    assert max(len(v) for v in brute(ids, xb, RULE.threshold).values()) > K
    assert groups(kept) == groups(plain)
    assert {(p[0], p[1]) for _, ps in groups(kept) for p in ps} == want
    a, b = duplicates_of(kept, ids, RULE), duplicates_of(plain, ids, RULE)
    assert {i: [(p.a, p.b) for p in ps] for i, ps in a.items()} == \
        {i: [(p.a, p.b) for p in ps] for i, ps in b.items()}


def test_only_rows_full_above_the_threshold_are_searched(
        pair: tuple[ImageIndex, ImageIndex, list[int], F32, F32]) -> None:
    kept, plain, ids, xb, _ = pair
    near_ids = brute(ids, xb, RULE.threshold)
    full = [i for i in ids if len(near_ids[i]) >= K]
    assert 0 < len(full) < len(ids)
    from_graph = candidates(kept, kept, ids, RULE.threshold, CAP)
    assert from_graph.searched == full
    from_search = candidates(plain, plain, ids, RULE.threshold, CAP)
    assert from_search.searched == ids
    for i, (gi, gd), (si, sd) in zip(ids, from_graph.found, from_search.found, strict=True):
        assert gi.tolist() == si.tolist() == near_ids[i]
        np.testing.assert_allclose(gd, sd, atol=1e-6)


def test_a_row_as_wide_as_the_cap_is_never_searched_again(
        pair: tuple[ImageIndex, ImageIndex, list[int], F32, F32]) -> None:
    kept, _, ids, xb, _ = pair
    near_ids = brute(ids, xb, RULE.threshold)
    found = candidates(kept, kept, ids, RULE.threshold, K)
    assert found.searched == []
    assert [f[0].tolist() for f in found.found] == [near_ids[i][:K] for i in ids]
