"""The ``layouts`` table: each image's layout descriptor, beside its record in ``store.sqlite``.

An additive schema migration: the table (and a trigger that deletes a descriptor with its image)
is created by the first add that brings descriptors, inside that add's transaction, so a record
and its descriptor are committed together. Indexes built before it simply have no table, and
images added without descriptors have no row: readers get nothing for them (see
:mod:`retrieval.index._duplicates` for what that means). Descriptors are float16 blobs, unit
norm, compared by dot product (:mod:`retrieval.features._layout` makes them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError

__all__ = ["fetch_layouts", "insert_layouts"]

F32 = npt.NDArray[np.float32]

_CREATE = (
    "CREATE TABLE IF NOT EXISTS layouts ("
    " image_id INTEGER PRIMARY KEY, dim INTEGER NOT NULL, descriptor BLOB NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS layouts_follow_images AFTER DELETE ON images "
    "BEGIN DELETE FROM layouts WHERE image_id = OLD.id; END",
)


def insert_layouts(db: sqlite3.Connection, ids: Sequence[int], layouts: npt.ArrayLike) -> None:
    """Store one descriptor per id; call inside the transaction that adds the records."""
    rows = np.ascontiguousarray(layouts, dtype=np.float16)
    if rows.ndim != 2 or rows.shape[0] != len(ids):
        raise ConfigError(f"expected {len(ids)} layout descriptors, got shape {rows.shape}")
    for statement in _CREATE:
        db.execute(statement)
    db.executemany("INSERT OR REPLACE INTO layouts(image_id, dim, descriptor) VALUES (?, ?, ?)",
                   [(int(i), rows.shape[1], row.tobytes()) for i, row in zip(ids, rows,
                                                                           strict=True)])


def has_layouts(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'layouts'").fetchone() is not None


def fetch_layouts(db: sqlite3.Connection, ids: Sequence[int]) -> dict[int, F32]:
    """The descriptors of ``ids`` that have one, as float32."""
    if not ids or not has_layouts(db):
        return {}
    marks = ",".join("?" * len(ids))
    rows = db.execute(f"SELECT image_id, dim, descriptor FROM layouts WHERE image_id IN ({marks})",
                      tuple(int(i) for i in ids)).fetchall()
    return {int(i): np.frombuffer(blob, dtype=np.float16).astype(np.float32)
            for i, dim, blob in rows if len(blob) == 2 * int(dim)}
