"""SQLite schema and connection settings of :mod:`retrieval.index.local._store`.

``journal_mode=WAL`` plus ``synchronous=FULL`` makes every committed transaction durable across a
power cut (WAL alone with ``NORMAL`` may lose the last commits). The connection runs in
autocommit mode and :func:`transaction` issues ``BEGIN IMMEDIATE`` explicitly, so a batch is one
atomic transaction that takes the write lock up front (no lock-upgrade deadlocks between
processes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrieval.errors import ArtifactError

__all__ = ["REQUEST_KEYS", "SCHEMA", "SCHEMA_VERSION", "connect", "transaction"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    added_at REAL NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX images_path ON images(path);
CREATE INDEX images_sha256 ON images(sha256);
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    image_id INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: Answers of keyed add requests (see :mod:`._unique`); created on a writable open
#: of a store made before the table existed (an added table needs no new schema version).
REQUEST_KEYS = """
CREATE TABLE IF NOT EXISTS request_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS request_keys_created ON request_keys(created_at);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise), in WAL + synchronous=FULL."""
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise ArtifactError(f"cannot open {path}: {exc}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ArtifactError(f"{path} is not a readable SQLite database: {exc}") from exc
    if str(mode).lower() != "wal":
        conn.close()
        raise ArtifactError(f"{path}: SQLite refused WAL mode (got {mode!r})")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
