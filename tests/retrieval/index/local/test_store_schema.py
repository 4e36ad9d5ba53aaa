"""Tests for the store's transactions: a failed COMMIT is rolled back and the connection stays
usable; SQLite's "database or disk is full" is a :class:`StorageFullError`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from retrieval.errors import StorageFullError
from retrieval.index.local._schema import connect, transaction


def test_a_failed_commit_is_rolled_back_and_the_connection_stays_usable(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    conn.executescript("PRAGMA foreign_keys = ON; CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                       "CREATE TABLE child (pid INTEGER REFERENCES parent(id) "
                       "DEFERRABLE INITIALLY DEFERRED);")
    # a deferred constraint fails at COMMIT, and SQLite then keeps the transaction open
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), transaction(conn) as db:
        db.execute("INSERT INTO child(pid) VALUES (99)")
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    with transaction(conn) as db:  # BEGIN IMMEDIATE works again: nothing was left open
        db.execute("INSERT INTO parent(id) VALUES (99)")
        db.execute("INSERT INTO child(pid) VALUES (99)")
    assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 1
    conn.close()


def test_a_failing_block_is_rolled_back(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError, match="boom"), transaction(conn) as db:
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    conn.close()


def test_database_full_is_a_storage_full_error_and_rolled_back(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    conn.execute("CREATE TABLE t (blob BLOB)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own SQLITE_FULL
    with pytest.raises(StorageFullError, match=r"db\.sqlite.*full") as caught, \
            transaction(conn, tmp_path / "db.sqlite") as db:
        db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 4000,) for _ in range(10)])
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    conn.execute("PRAGMA max_page_count = 1000000")  # space freed: the same write succeeds
    with transaction(conn) as db:
        db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 4000,) for _ in range(10)])
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 10
    conn.close()
