"""Idempotent adds: one transaction that skips content already stored and remembers request keys.

:func:`insert_unique` runs inside the caller's ``BEGIN IMMEDIATE`` transaction (the store's write
lock is held, so no other process can insert the same content meanwhile):

* an item whose ``sha256`` is already stored is not inserted again: the existing record is
  returned, flagged ``duplicate`` (two equal items in one call: the second is the duplicate);
* with a ``request_key``, the answer (every record and flag, in order) is saved in
  ``request_keys`` in the *same* transaction, so a retried request finds either nothing (the first
  one never committed: it is applied now) or exactly the first answer; never half of one.
  Keys older than ``key_ttl_s`` are forgotten; a key sent again with other content (another
  ``fingerprint``) is refused with :class:`ConfigError`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.index._records import Added, AddOutcome, NewImage
from retrieval.index.local._tags import insert_tags, read_tags

__all__ = ["insert_unique", "save_outcome", "saved_outcome"]

F32 = npt.NDArray[np.float32]

_COLUMNS = "id, path, sha256, width, height, added_at"


def saved_outcome(db: sqlite3.Connection, key: str, fingerprint: str,
                  oldest: float) -> AddOutcome | None:
    """The answer saved under ``key`` (if younger than ``oldest``), or None."""
    row = db.execute("SELECT fingerprint, result FROM request_keys WHERE key = ? "
                     "AND created_at >= ?", (key, oldest)).fetchone()
    if row is None:
        return None
    if row[0] != fingerprint:
        raise ConfigError("this Idempotency-Key was already used for a request with other "
                          "content; use a new key for a new request")
    return AddOutcome([Added(**{**item, "tags": tuple(item.get("tags", ()))})
                       for item in json.loads(row[1])], replayed=True)


def insert_unique(db: sqlite3.Connection, items: Sequence[NewImage], vectors: F32,
                  now: float) -> AddOutcome:
    """Insert the items not stored yet (module docstring). A duplicate's stored record keeps
    its own tags (the item's are not given to it here)."""
    added: list[Added] = []
    for item, vector in zip(items, vectors, strict=True):
        row = db.execute(f"SELECT {_COLUMNS} FROM images WHERE sha256 = ? ORDER BY id LIMIT 1",
                         (item.sha256,)).fetchone()
        if row is not None:
            image_id, stored_path, stored_sha, w, h, added_at = row
            tags = read_tags(db, [int(image_id)]).get(int(image_id), ())
            added.append(Added(int(image_id), str(stored_path), str(stored_sha), int(w), int(h),
                               float(added_at), tags=tags, duplicate=True))
            continue
        cur = db.execute("INSERT INTO images(path, sha256, width, height, added_at, vector) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (item.path, item.sha256, item.width, item.height, now,
                          vector.tobytes()))
        new_id = int(cur.lastrowid or 0)
        insert_tags(db, new_id, item.tags)
        added.append(Added(new_id, item.path, item.sha256, item.width, item.height, now,
                           tags=item.tags, duplicate=False))
    outcome = AddOutcome(added)
    db.executemany("INSERT INTO changes(op, image_id) VALUES ('add', ?)",
                   [(i,) for i in outcome.new_ids])
    return outcome


def save_outcome(db: sqlite3.Connection, key: str, fingerprint: str, outcome: AddOutcome,
                 now: float, oldest: float) -> None:
    """Remember ``outcome`` under ``key``; forget keys older than ``oldest``."""
    db.execute("DELETE FROM request_keys WHERE created_at < ?", (oldest,))
    result = json.dumps([asdict(a) for a in outcome.added], separators=(",", ":"))
    db.execute("INSERT OR REPLACE INTO request_keys(key, fingerprint, created_at, result) "
               "VALUES (?, ?, ?, ?)", (key, fingerprint, now, result))
