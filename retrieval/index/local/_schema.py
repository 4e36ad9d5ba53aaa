"""SQLite schema and connection settings of :mod:`retrieval.index.local._store`.

``journal_mode=WAL`` plus ``synchronous=FULL`` makes every committed transaction durable across a
power cut (WAL alone with ``NORMAL`` may lose the last commits). The connection runs in
autocommit mode and :func:`transaction` issues ``BEGIN IMMEDIATE`` explicitly, so a batch is one
atomic transaction that takes the write lock up front (no lock-upgrade deadlocks between
processes).

A transaction whose block or ``COMMIT`` fails is rolled back explicitly: SQLite may leave it open
after a failed ``COMMIT`` (``SQLITE_FULL``, ``SQLITE_IOERR``, ``SQLITE_BUSY``, a deferred
constraint) and asks for a ``ROLLBACK``, after which the connection is usable again. A full disk
(``SQLITE_FULL``) raises :class:`~retrieval.errors.StorageFullError`; the next write succeeds by
itself once space has been freed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrieval.errors import ArtifactError, StorageFullError

__all__ = ["REQUEST_KEYS", "SCHEMA", "SCHEMA_VERSION", "TAGS", "connect", "full_disk_raises",
           "transaction"]

log = logging.getLogger(__name__)

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

#: Each image's tags, one row per (tag, image) (see :mod:`._tags`); added like ``request_keys``:
#: with a new store and on a writable open of an older one. The primary key answers a tag filter,
#: ``tags_image`` reads a record's tags, the trigger deletes an image's tags with it.
TAGS = """
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    image_id INTEGER NOT NULL,
    PRIMARY KEY (tag, image_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TRIGGER IF NOT EXISTS tags_follow_images AFTER DELETE ON images
BEGIN DELETE FROM tags WHERE image_id = OLD.id; END;
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


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF == sqlite3.SQLITE_FULL  # the primary code of an extended one
    return "database or disk is full" in str(exc)


@contextmanager
def full_disk_raises(where: object) -> Iterator[None]:
    """Turn SQLite's ``SQLITE_FULL`` inside the block into :class:`StorageFullError`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if _is_full(exc):
            raise StorageFullError(f"no space left to write {where}: {exc}") from exc
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    """``ROLLBACK`` what a failed block or ``COMMIT`` left open (never masks the failure)."""
    if not conn.in_transaction:
        return  # SQLite rolled it back itself (some SQLITE_FULL and IOERR cases do)
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.error("ROLLBACK after a failed transaction failed too: %s", exc)


@contextmanager
def transaction(conn: sqlite3.Connection,
                where: object = "the store") -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` if the block or the ``COMMIT`` fails.

    ``where`` (the database's path) names the store in a :class:`StorageFullError`.
    """
    with full_disk_raises(where):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
