"""Near-duplicates: "the same picture" (resized, re-encoded, lightly cropped, brightened, grey),
not merely "the same place".

Two stages, both measured on paris250 (README, "Near-duplicates"):

1. **candidates** — images whose global vectors (the raw stored ones) have cosine ≥
   ``threshold``, read from the kept neighbour graph where the index keeps one, found with a range
   search (:meth:`~retrieval.index.KeepsLayouts.range_search`) for the images whose kept row is
   full above the threshold and for stores without a graph (:mod:`._dup_candidates`);
2. **confirmation** — a candidate pair is kept when the two layout descriptors
   (:mod:`retrieval.features._layout`, stored at ingest) have cosine ≥ ``layout_threshold``.
   Two photos of one landmark pass stage 1 but not stage 2; an edited copy passes both.

Images without a stored descriptor (indexes built before descriptors existed) skip stage 2:
such a pair is kept only if its global cosine reaches :data:`GLOBAL_ONLY_THRESHOLD`, the
global-only setting measured to be nearly false-positive free (nothing is recomputed: that
would need the network). Re-add the images to give them descriptors.

Pairs form groups (connected components). :func:`duplicate_page` walks the index in id order
from a cursor and reports each group once, at its smallest id, so a client pages through all
groups with bounded work per call; :func:`duplicates_of` answers for given images.

Engine-neutral: it runs on any store that :class:`~retrieval.index.KeepsLayouts` (the local
FAISS+SQLite one does; a Milvus store keeps no layouts and is refused with a clear error).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.errors import ConfigError
from retrieval.index._dup_candidates import candidates
from retrieval.index._protocol import IndexStore, KeepsLayouts

__all__ = [
    "DEFAULT_LAYOUT_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "GLOBAL_ONLY_THRESHOLD",
    "DuplicateGroup",
    "DuplicatePage",
    "DuplicatePair",
    "DuplicateRule",
    "duplicate_page",
    "duplicates_of",
    "group_pairs",
    "supports_duplicates",
]

DEFAULT_THRESHOLD = 0.80
DEFAULT_LAYOUT_THRESHOLD = 0.85
GLOBAL_ONLY_THRESHOLD = 0.96
MAX_NEIGHBOURS = 64  # candidates kept per image, best first
MAX_GROUP = 256  # members gathered per group before it is reported as truncated


@dataclass(frozen=True)
class DuplicateRule:
    """The thresholds of the two stages (cosines in [-1, 1])."""

    threshold: float = DEFAULT_THRESHOLD
    layout_threshold: float = DEFAULT_LAYOUT_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("threshold", "layout_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not -1.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be a cosine between -1 and 1, got {value!r}")


@dataclass(frozen=True)
class DuplicatePair:
    """Images ``a < b``; ``score`` is the layout cosine (the global one without descriptors)."""

    a: int
    b: int
    score: float
    global_score: float
    layout_score: float | None


@dataclass
class DuplicateGroup:
    """A connected group: ``members`` best-first, ``pairs`` best-first, ``score`` the best."""

    members: list[int]
    pairs: list[DuplicatePair] = field(default_factory=list)
    truncated: bool = False

    @property
    def score(self) -> float:
        return self.pairs[0].score if self.pairs else 0.0

    def member_scores(self) -> dict[int, float]:
        """Each member's best pair score within the group."""
        best: dict[int, float] = {}
        for p in self.pairs:
            for m in (p.a, p.b):
                best[m] = max(best.get(m, -1.0), p.score)
        return best


@dataclass
class DuplicatePage:
    """Groups whose smallest id is in ``(cursor, next_cursor]``; ``next_cursor`` None: the end."""

    groups: list[DuplicateGroup]
    next_cursor: int | None
    scanned: int


class _Neighbours:
    """Confirmed near-duplicate pairs of images, computed in batches and cached per request."""

    def __init__(self, index: IndexStore, rule: DuplicateRule) -> None:
        self.layouts = _with_layouts(index)
        if index.manifest.metric != "inner_product":
            raise ConfigError("near-duplicates need an inner-product index of unit vectors")
        self.index, self.rule = index, rule
        self.cache: dict[int, list[DuplicatePair]] = {}

    def of(self, ids: Iterable[int]) -> dict[int, list[DuplicatePair]]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        missing = [i for i in wanted if i not in self.cache]
        for start in range(0, len(missing), 256):
            self._fill(missing[start:start + 256])
        return {i: self.cache[i] for i in wanted}

    def _fill(self, ids: list[int]) -> None:
        present = [r.id for r in self.index.records(ids)]
        for i in set(ids) - set(present):
            self.cache[i] = []
        if not present:
            return
        found = candidates(self.index, self.layouts, present, self.rule.threshold,
                           MAX_NEIGHBOURS)
        others = {int(j) for hit_ids, _ in found.found for j in hit_ids}
        layouts = self.layouts.layouts(sorted(others | set(present)))
        for i, (hit_ids, scores) in zip(present, found.found, strict=True):
            self.cache[i] = [p for j, s in zip(hit_ids.tolist(), scores.tolist(), strict=True)
                             if (p := self._confirm(i, j, s, layouts)) is not None]

    def _confirm(self, i: int, j: int, global_score: float,
                 layouts: dict[int, np.ndarray]) -> DuplicatePair | None:
        a, b = min(i, j), max(i, j)
        li, lj = layouts.get(i), layouts.get(j)
        if li is None or lj is None or li.shape != lj.shape:
            if global_score < GLOBAL_ONLY_THRESHOLD:
                return None
            return DuplicatePair(a, b, global_score, global_score, None)
        layout = float(li @ lj)
        if layout < self.rule.layout_threshold:
            return None
        return DuplicatePair(a, b, layout, global_score, layout)


def _component(nbrs: _Neighbours, start: int) -> tuple[set[int], list[DuplicatePair], bool]:
    """The group of ``start``: breadth first, one batched search per level, at most MAX_GROUP."""
    members, pairs, frontier = {start}, {}, [start]
    while frontier:
        found = nbrs.of(frontier)
        frontier = []
        for pair in (p for ps in found.values() for p in ps):
            pairs[(pair.a, pair.b)] = pair
            for m in (pair.a, pair.b):
                if m not in members and len(members) < MAX_GROUP:
                    members.add(m)
                    frontier.append(m)
    truncated = len(members) >= MAX_GROUP
    kept = [p for p in pairs.values() if p.a in members and p.b in members]
    return members, kept, truncated


def group_pairs(pairs: Iterable[DuplicatePair]) -> list[DuplicateGroup]:
    """Connected components of the pairs (union-find), best group first.

    Within a group, pairs are by descending score and members in the order they first appear
    in them (the best pair's images first, the smaller id first). Groups: best score first, then
    smallest member.
    """
    ordered = sorted(pairs, key=lambda p: (-p.score, p.a, p.b))
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in ordered:
        ra, rb = root(p.a), root(p.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, DuplicateGroup] = {}
    for p in ordered:
        g = groups.setdefault(root(p.a), DuplicateGroup(members=[]))
        g.pairs.append(p)
        g.members.extend(m for m in (p.a, p.b) if m not in g.members)
    return sorted(groups.values(), key=lambda g: (-g.score, min(g.members)))


def supports_duplicates(index: object) -> bool:
    """Whether ``index`` can find near-duplicates (its store keeps layouts)."""
    return isinstance(index, KeepsLayouts)


def _with_layouts(index: object) -> KeepsLayouts:
    if not isinstance(index, KeepsLayouts):
        raise ConfigError("near-duplicate search needs the FAISS+SQLite store (it keeps the "
                          "layout descriptors); this index keeps its vectors elsewhere")
    return index


def duplicate_page(index: IndexStore, rule: DuplicateRule | None = None, *, cursor: int = 0,
                   limit: int = 20, scan: int = 2000) -> DuplicatePage:
    """Up to ``limit`` groups whose smallest id is after ``cursor``, looking at no more than
    ``scan`` images in id order (so a page may hold fewer groups and still have a next cursor).
    """
    if limit < 1 or scan < 1 or cursor < 0:
        raise ConfigError(f"limit and scan must be positive and cursor >= 0, got "
                          f"{limit}, {scan}, {cursor}")
    nbrs = _Neighbours(index, rule or DuplicateRule())
    anchors = nbrs.layouts.ids_after(cursor, scan + 1)
    more = len(anchors) > scan
    anchors = anchors[:scan]
    nbrs.of(anchors)
    groups: list[DuplicateGroup] = []
    reported: set[int] = set()
    for pos, anchor in enumerate(anchors):
        if anchor in reported or not nbrs.of([anchor])[anchor]:
            continue
        members, pairs, truncated = _component(nbrs, anchor)
        if min(members) < anchor:
            continue  # reported with its smallest id, on this page or an earlier one
        group = group_pairs(pairs)[0]
        group.truncated = truncated
        groups.append(group)
        reported |= members
        if len(groups) == limit:
            last = pos == len(anchors) - 1 and not more
            return DuplicatePage(groups, None if last else anchor, pos + 1)
    return DuplicatePage(groups, anchors[-1] if more and anchors else None, len(anchors))


def duplicates_of(index: IndexStore, ids: Sequence[int], rule: DuplicateRule | None = None, *,
                  exclude: Iterable[int] = ()) -> dict[int, list[DuplicatePair]]:
    """The confirmed near-duplicates of each of ``ids`` (pairs best-first), ``exclude`` left out."""
    skip = {int(i) for i in exclude}
    found = _Neighbours(index, rule or DuplicateRule()).of(ids)
    return {i: [p for p in pairs if (p.b if p.a == i else p.a) not in skip]
            for i, pairs in found.items()}
