"""The ``tags`` table: each image's tags, one row per (tag, image), beside ``images``.

An additive schema migration like ``request_keys`` (``TAGS`` in :mod:`._schema`): created with a
new store and on every writable open of an older one (no new schema version), with a trigger that
deletes an image's tags with it. A read-only open of an older store has no table: its images
have no tags. The primary key ``(tag, image_id)`` answers a tag filter; the ``image_id`` index
reads a record's tags. Tag changes are metadata: they are not in the ``changes`` log (FAISS does
not hold tags), and a reader sees them at once (records are always read from SQLite).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from retrieval.index._tags import TagEdit

__all__ = ["has_tags", "insert_tags", "read_tags", "retag_rows", "tag_counts",
           "tagged_clause"]


def has_tags(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'tags'").fetchone() is not None


def insert_tags(db: sqlite3.Connection, image_id: int, tags: Sequence[str]) -> None:
    """Give ``image_id`` these (clean) tags; inside the transaction that adds it."""
    if tags:
        db.executemany("INSERT OR IGNORE INTO tags(tag, image_id) VALUES (?, ?)",
                       [(t, image_id) for t in tags])


def read_tags(db: sqlite3.Connection, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The tags of those ``ids`` that have some, each sorted."""
    if not ids or not has_tags(db):
        return {}
    marks = ",".join("?" * len(ids))
    found: dict[int, list[str]] = {}
    for tag, image_id in db.execute(f"SELECT tag, image_id FROM tags WHERE image_id IN ({marks}) "
                                    "ORDER BY image_id, tag", tuple(ids)):
        found.setdefault(int(image_id), []).append(str(tag))
    return {i: tuple(t) for i, t in found.items()}


def retag_rows(db: sqlite3.Connection, ids: Sequence[int], edit: TagEdit) -> None:
    """Apply ``edit`` to the stored images ``ids`` (inside a write transaction)."""
    current = read_tags(db, ids)
    for image_id in ids:
        new = edit.applied(current.get(image_id, ()))
        db.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
        insert_tags(db, image_id, new)


def tag_counts(db: sqlite3.Connection) -> dict[str, int]:
    """Every tag in use and how many images hold it, by tag."""
    if not has_tags(db):
        return {}
    return {str(t): int(n) for t, n in
            db.execute("SELECT tag, COUNT(*) FROM tags GROUP BY tag ORDER BY tag")}


def tagged_clause(tags: Sequence[str]) -> tuple[str, list[str]]:
    """A ``WHERE`` clause on ``images`` for "holds every one of ``tags``", and its parameters."""
    marks = ",".join("?" * len(tags))
    return (f"id IN (SELECT image_id FROM tags WHERE tag IN ({marks}) GROUP BY image_id "
            f"HAVING COUNT(*) = {len(tags)})", list(tags))
