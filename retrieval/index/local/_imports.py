"""Store changes that embed nothing: a record re-pointed to a moved file, records imported with
their own ids (a migration from another store). Functions of an open SQLite transaction, called by
:class:`~retrieval.index.local._store.Store`.

A re-point changes only ``images.path``: the vector, the id and FAISS are untouched, so it needs
no entry in the change log, and a read-only follower sees the new path on its next read (records
are always read from the store). An import inserts rows with explicit ids (SQLite's
``AUTOINCREMENT`` then continues above the largest) and logs them as adds, like any add.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.index._records import ImageRecord
from retrieval.index.local._layouts import insert_layouts
from retrieval.index.local._tags import insert_tags

__all__ = ["import_rows", "repoint_rows"]

F32 = npt.NDArray[np.float32]


def repoint_rows(db: sqlite3.Connection, moves: Mapping[int, str]) -> list[int]:
    """``UPDATE images SET path`` for each id; the ids that existed, ascending."""
    done: list[int] = []
    for image_id, path in sorted(moves.items()):
        if not isinstance(path, str) or not path:
            raise ConfigError(f"a record needs a path, got {path!r} for id {image_id}")
        cur = db.execute("UPDATE images SET path = ? WHERE id = ?", (path, int(image_id)))
        if cur.rowcount:
            done.append(int(image_id))
    return done


def import_rows(db: sqlite3.Connection, records: Sequence[ImageRecord], vectors: F32,
                layouts: Mapping[int, npt.ArrayLike] | None) -> list[int]:
    """Insert ``records`` with their ids, times and tags; :class:`ConfigError` if an id is
    taken."""
    ids = [int(r.id) for r in records]
    if len(set(ids)) != len(ids) or any(i < 1 for i in ids):
        raise ConfigError("imported records need distinct, positive ids")
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        taken = db.execute(f"SELECT id FROM images WHERE id IN ({','.join('?' * len(chunk))}) "
                           "LIMIT 1", tuple(chunk)).fetchone()
        if taken is not None:
            raise ConfigError(f"id {taken[0]} is already stored: records are imported into a "
                              "new, empty index")
    db.executemany(
        "INSERT INTO images(id, path, sha256, width, height, added_at, vector) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(r.id, r.path, r.sha256, r.width, r.height, r.added_at, v.tobytes())
         for r, v in zip(records, vectors, strict=True)])
    for r in records:
        insert_tags(db, int(r.id), r.tags)
    with_layout = [i for i in ids if layouts and i in layouts]
    if with_layout and layouts is not None:
        insert_layouts(db, with_layout, np.stack([np.asarray(layouts[i]) for i in with_layout]))
    db.executemany("INSERT INTO changes(op, image_id) VALUES ('add', ?)", [(i,) for i in ids])
    return ids
