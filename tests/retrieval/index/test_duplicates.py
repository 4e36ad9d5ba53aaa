"""Near-duplicate pairs and groups against a brute-force reference over every pair."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from retrieval.errors import ConfigError
from retrieval.index import (
    DuplicateGroup,
    DuplicatePair,
    DuplicateRule,
    ImageIndex,
    KeepsLayouts,
    Manifest,
    NewImage,
    create_index,
    duplicate_page,
    duplicates_of,
    group_pairs,
)
from tests.retrieval.index.samples import lite_or_faiss

F32 = npt.NDArray[np.float32]
D, L = 16, 12
RULE = DuplicateRule(threshold=0.8, layout_threshold=0.85)


def unit(x: npt.ArrayLike) -> F32:
    a = np.asarray(x, dtype=np.float32)
    return np.asarray(a / np.linalg.norm(a, axis=-1, keepdims=True), dtype=np.float32)


def near(v: F32, cos: float, rng: np.random.Generator) -> F32:
    """A unit vector whose cosine with the unit vector ``v`` is exactly ``cos``."""
    u = rng.standard_normal(v.shape).astype(np.float32)
    u = unit(u - (u @ v) * v)
    return unit(cos * v + np.sqrt(1 - cos**2) * u)


def records(n: int) -> list[NewImage]:
    return [NewImage(f"img/{i}.jpg", f"{i:064x}", 64, 48) for i in range(n)]


def manifest() -> Manifest:
    return Manifest(backbone="squeezenet1_1", weights="random:seed=0", max_side=64,
                    pooling="sum", dim=D, faiss_factory="Flat")


def dataset(seed: int = 0) -> tuple[F32, F32]:
    """Clusters of copies (close vectors, close layouts), same-place photos (close vectors,
    other layouts) and loners."""
    rng = np.random.default_rng(seed)
    xb, lb = [], []
    for _ in range(8):
        g, lay = unit(rng.standard_normal(D)), unit(rng.standard_normal(L))
        xb.append(g)
        lb.append(lay)
        for _ in range(int(rng.integers(0, 4))):
            kind = rng.random()
            xb.append(near(g, float(rng.uniform(0.82, 0.995)), rng))
            lb.append(near(lay, float(rng.uniform(0.86, 0.99) if kind < 0.6
                                      else rng.uniform(0.2, 0.8)), rng))
    return np.stack(xb), np.stack(lb)


def reference_pairs(ids: list[int], xb: F32, lb: F32, rule: DuplicateRule) -> set[tuple[int, int]]:
    lay = lb.astype(np.float16).astype(np.float32)  # stored as float16
    found = set()
    for i, j in itertools.combinations(range(len(ids)), 2):
        if xb[i] @ xb[j] >= rule.threshold and lay[i] @ lay[j] >= rule.layout_threshold:
            found.add((ids[i], ids[j]))
    return found


def components(pairs: set[tuple[int, int]]) -> list[set[int]]:
    groups = group_pairs([DuplicatePair(a, b, 1.0, 1.0, 1.0) for a, b in pairs])
    return sorted((set(g.members) for g in groups), key=min)


def all_groups(index: ImageIndex, **kw: int) -> list[DuplicateGroup]:
    groups, cursor = [], 0
    while True:
        page = duplicate_page(index, RULE, cursor=cursor, **kw)
        groups += page.groups
        if page.next_cursor is None:
            return groups
        assert page.next_cursor > cursor
        cursor = page.next_cursor


@pytest.fixture(params=["faiss", "milvus-lite"])
def index(request: pytest.FixtureRequest,
          tmp_path: Path) -> Iterator[tuple[ImageIndex, list[int], F32, F32]]:
    """The same collection in each engine that keeps layouts (Milvus: in its meta collection)."""
    xb, lb = dataset()
    spec = lite_or_faiss(str(request.param), tmp_path)
    with create_index(tmp_path / "idx", manifest(), spec) as idx:
        assert isinstance(idx, KeepsLayouts)
        ids = idx.add(records(len(xb)), xb, lb)
        yield idx, ids, xb, lb  # an ImageIndex or a MilvusIndex: alike here


def test_pairs_and_groups_equal_brute_force(index: tuple[ImageIndex, list[int], F32, F32]) -> None:
    idx, ids, xb, lb = index
    want = reference_pairs(ids, xb, lb, RULE)
    assert want, "the generated set must hold duplicates"
    groups = all_groups(idx)
    assert {(p.a, p.b) for g in groups for p in g.pairs} == want
    assert sorted((set(g.members) for g in groups), key=min) == components(want)
    for g in groups:
        scores = [p.score for p in g.pairs]
        assert scores == sorted(scores, reverse=True) and g.score == scores[0]
        assert set(g.members[:2]) == {g.pairs[0].a, g.pairs[0].b}
        assert all(p.layout_score is not None and p.global_score >= RULE.threshold
                   for p in g.pairs)


@pytest.mark.parametrize(("limit", "scan"), [(1, 1), (1, 3), (2, 5), (100, 1000)])
def test_pages_report_every_group_once(index: tuple[ImageIndex, list[int], F32, F32],
                                       limit: int, scan: int) -> None:
    idx, ids, xb, lb = index
    groups = all_groups(idx, limit=limit, scan=scan)
    mins = [min(g.members) for g in groups]
    assert len(mins) == len(set(mins)) and mins == sorted(mins)
    assert sorted((set(g.members) for g in groups), key=min) == \
        components(reference_pairs(ids, xb, lb, RULE))
    page = duplicate_page(idx, RULE, limit=limit, scan=scan)
    assert len(page.groups) <= limit and page.scanned <= scan


def test_duplicates_of_and_exclude(index: tuple[ImageIndex, list[int], F32, F32]) -> None:
    idx, ids, xb, lb = index
    want = reference_pairs(ids, xb, lb, RULE)
    a, b = min(want)
    found = duplicates_of(idx, [a, 10**9], RULE)
    assert {(p.a, p.b) for p in found[a]} == {p for p in want if a in p}
    assert found[10**9] == []
    assert all(b not in (p.a, p.b) for p in duplicates_of(idx, [a], RULE, exclude=[b])[a])


def test_removal_drops_descriptor_and_pairs(index: tuple[ImageIndex, list[int], F32, F32]) -> None:
    idx, ids, xb, lb = index
    _a, b = min(reference_pairs(ids, xb, lb, RULE))
    assert b in idx.layouts([b])
    np.testing.assert_array_equal(idx.layouts([b])[b], lb[ids.index(b)].astype(np.float16))
    idx.remove([b])
    assert idx.layouts([b]) == {}
    assert all(b not in g.members for g in all_groups(idx))


def test_without_descriptors_only_near_identical_vectors_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    g, h = unit(rng.standard_normal(D)), unit(rng.standard_normal(D))
    xb = np.stack([g, near(g, 0.97, rng), h, near(h, 0.9, rng)])
    with ImageIndex.create(tmp_path / "old", manifest()) as idx:  # an index from before layouts
        ids = idx.add(records(4), xb)
        assert idx.store.layouts(ids) == {}
        (group,) = duplicate_page(idx, RULE).groups
    assert group.members == ids[:2] and group.pairs[0].layout_score is None
    assert group.score == pytest.approx(0.97, abs=1e-5)


def test_layouts_survive_reopening(tmp_path: Path) -> None:
    xb, lb = dataset(2)
    with ImageIndex.create(tmp_path / "idx", manifest()) as idx:
        ids = idx.add(records(len(xb)), xb, lb)
        before = [(g.members, g.score) for g in all_groups(idx)]
    with ImageIndex.open(tmp_path / "idx", read_only=True) as idx:
        assert len(idx.store.layouts(ids)) == len(ids)
        assert [(g.members, g.score) for g in all_groups(idx)] == before


@pytest.mark.parametrize("bad", [{"threshold": 1.5}, {"layout_threshold": -2.0},
                                 {"threshold": True}])
def test_rule_is_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DuplicateRule(**bad)


def test_page_arguments_are_validated(index: tuple[ImageIndex, list[int], F32, F32]) -> None:
    with pytest.raises(ConfigError):
        duplicate_page(index[0], RULE, limit=0)


def test_group_pairs_orders_best_first() -> None:
    pairs = [DuplicatePair(1, 2, 0.9, 0.9, 0.9), DuplicatePair(2, 3, 0.95, 0.9, 0.95),
             DuplicatePair(7, 8, 0.99, 0.99, 0.99)]
    first, second = group_pairs(pairs)
    assert first.members == [7, 8] and second.members == [2, 3, 1]
    assert [p.score for p in second.pairs] == [0.95, 0.9]
    assert second.member_scores() == {1: 0.9, 2: 0.95, 3: 0.95}
