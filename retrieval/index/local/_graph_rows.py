"""The kept neighbour graph's rows in ``store.sqlite`` (see :mod:`._graph` for what they mean).

One row per image in ``graph``: its neighbour ids (``nn``: int64, -1 padded) and their raw
cosines (``sims``: float64, -inf padded), ``k`` of each, little-endian blobs (16·k bytes per
image: 320 at k = 20). ``meta.graph_k`` says how many neighbours the rows hold; without it the
store keeps no graph (indexes made before the graph existed, or without one). Rows are written
by the hook an add, a remove or a replace runs inside its own transaction (:data:`GraphWrite`),
so the records and the graph always commit together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["GRAPH", "GRAPH_K_KEY", "GraphWrite", "delete_rows", "iter_rows", "write_rows"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

GRAPH_K_KEY = "graph_k"
GRAPH = """
CREATE TABLE IF NOT EXISTS graph (
    id INTEGER PRIMARY KEY,
    nn BLOB NOT NULL,
    sims BLOB NOT NULL
);
"""
#: ``hook(db, removed_ids, added_ids, added_vectors)``, run inside a change's transaction.
GraphWrite = Callable[[sqlite3.Connection, list[int], list[int], F32], None]
_CHUNK = 500


def write_rows(db: sqlite3.Connection, ids: I64, nn: I64, sims: F64) -> None:
    """Insert or replace the rows of ``ids``."""
    i64, f64 = np.dtype("<i8"), np.dtype("<f8")
    db.executemany("INSERT OR REPLACE INTO graph(id, nn, sims) VALUES (?, ?, ?)",
                   ((int(i), row_i.astype(i64).tobytes(), row_d.astype(f64).tobytes())
                    for i, row_i, row_d in zip(ids.tolist(), nn, sims, strict=True)))


def delete_rows(db: sqlite3.Connection, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), _CHUNK):
        chunk = [int(i) for i in ids[start:start + _CHUNK]]
        db.execute(f"DELETE FROM graph WHERE id IN ({','.join('?' * len(chunk))})", chunk)


def iter_rows(db: sqlite3.Connection, k: int,
              batch: int = 10_000) -> Iterator[tuple[I64, I64, F64]]:
    """Every (ids, nn, sims) in ascending id order, ``batch`` rows at a time."""
    last = 0
    while True:
        rows = db.execute("SELECT id, nn, sims FROM graph WHERE id > ? ORDER BY id LIMIT ?",
                          (last, batch)).fetchall()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        nn = np.frombuffer(b"".join(r[1] for r in rows), dtype="<i8").reshape(len(rows), k)
        sims = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f8").reshape(len(rows), k)
        yield ids, nn.astype(np.int64), sims.astype(np.float64)
        last = int(ids[-1])
