"""When a local index keeps a neighbour graph, loading it, and the hook that writes its rows.

An index keeps one when its manifest asks for ``graph_k`` neighbours or for DBA: it keeps
``max(graph_k, dba_k)`` (:func:`kept_k`). The rows live in ``store.sqlite``
(:mod:`._graph_rows`); on open they are read back with the raw vectors (nothing is searched).
A store without rows of that ``k`` — an index made before the graph existed, or one whose
``graph_k`` grew — gets its graph built once, exactly, and (opened for writing) stored, so
the next open reads it. :class:`GraphChange` is the hook every add, remove and replace of a
writer runs inside its transaction: it plans the graph's change, writes the rows, and keeps the
plan for :class:`~._live.Live` to apply once the transaction committed.
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np
import numpy.typing as npt

from retrieval.index._manifest import Manifest
from retrieval.index.local._graph import AnnSearch, GraphDelta, GraphKeeper
from retrieval.index.local._graph_rows import delete_rows, write_rows
from retrieval.index.local._store import Store

__all__ = ["GraphChange", "kept_k", "open_graph"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


def kept_k(manifest: Manifest) -> int:
    """Neighbours per image the index keeps (0: no graph)."""
    return max(manifest.graph_k, manifest.dba_k)


def open_graph(store: Store, k: int, *, writable: bool,
               ann: AnnSearch | None = None) -> tuple[GraphKeeper, bool]:
    """The kept graph of ``store`` and whether it was built now (not read back)."""
    ids, room = _raw_vectors(store)
    x = room[:len(ids)]
    stored = store.read_graph() if store.graph_k() == k else None
    if stored is not None and np.array_equal(stored[0], ids):
        return GraphKeeper.loaded(k, ids, room, stored[1], stored[2], ann=ann), False
    if stored is not None:
        log.warning("%s: the kept graph does not cover the stored images; rebuilding it",
                    store.path)
    keeper = GraphKeeper(k, store.dim, ann=ann)
    keeper.apply(keeper.plan([], ids, x))
    log.info("built the neighbour graph of %d images (k=%d)", len(ids), k)
    if writable:
        graph = keeper.graph()
        store.write_graph(k, graph.ids, graph.I, graph.D)
    return keeper, True


def _raw_vectors(store: Store) -> tuple[npt.NDArray[np.int64], F32]:
    """Every stored id, and their vectors in the first rows of one array with room for adds
    after them (the keeper takes it as its buffer: no copy on open or on the first add)."""
    n = store.count()
    x = np.empty((n + max(1024, n // 8), store.dim), dtype=np.float32)
    ids = np.empty(len(x), dtype=np.int64)
    filled = 0
    for part_ids, part in store.iter_all():
        take = min(len(part_ids), len(x) - filled)  # another process may be adding meanwhile
        ids[filled:filled + take], x[filled:filled + take] = part_ids[:take], part[:take]
        filled += take
    return ids[:filled], x


class GraphChange:
    """The store hook of one change (see :data:`~._graph_rows.GraphWrite`)."""

    def __init__(self, keeper: GraphKeeper) -> None:
        self.keeper = keeper
        self.delta: GraphDelta | None = None

    def __call__(self, db: sqlite3.Connection, removed: list[int], added: list[int],
                 xb: F32) -> None:
        delta = self.keeper.plan(removed, added, xb)
        delete_rows(db, delta.gone.tolist())
        write_rows(db, delta.ids, delta.I, delta.D)
        self.delta = delta
