"""The index's source of truth: one SQLite file holding every image's record *and its vector*.

Opened in WAL mode with ``synchronous=FULL``, so a committed :meth:`Store.add` or
:meth:`Store.remove` survives a crash or power cut. Every change also appends a row to the
``changes`` log, whose ``seq`` numbers order all adds and removes; the FAISS snapshot records the
last ``seq`` it contains and replays the rest (:mod:`._recovery`). Both ``images.id`` and
``changes.seq`` are ``AUTOINCREMENT``: SQLite never hands out an id or a seq twice, even after the
row holding the largest one was deleted, so an id names one image forever.

One connection is shared by threads (``check_same_thread=False``) and serialised by a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from retrieval._arrays import as_matrix
from retrieval.errors import ArtifactError, ConfigError, NotFoundError
from retrieval.index._records import (
    DEFAULT_KEY_TTL_S,
    AddOutcome,
    ImageRecord,
    NewImage,
    check_new_images,
)
from retrieval.index._tags import TagEdit
from retrieval.index.local._graph_rows import (
    GRAPH,
    GRAPH_K_KEY,
    GraphWrite,
    iter_rows,
    write_rows,
)
from retrieval.index.local._imports import import_rows, repoint_rows
from retrieval.index.local._layouts import fetch_layouts, insert_layouts
from retrieval.index.local._schema import (
    REQUEST_KEYS,
    SCHEMA,
    SCHEMA_VERSION,
    TAGS,
    connect,
    full_disk_raises,
    transaction,
)
from retrieval.index.local._tags import (
    has_tags,
    insert_tags,
    read_tags,
    retag_rows,
    tag_counts,
    tagged_clause,
)
from retrieval.index.local._unique import insert_unique, save_outcome, saved_outcome

__all__ = ["DEFAULT_KEY_TTL_S", "STORE_NAME", "Change", "Store"]

STORE_NAME = "store.sqlite"
_CHUNK = 500  # ids per "IN (...)" query, well under SQLite's variable limit
_RECORD_COLUMNS = "id, path, sha256, width, height, added_at"

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


ChangeOp = Literal["add", "remove"]


class Change(NamedTuple):
    seq: int
    op: ChangeOp
    image_id: int


def _op(value: object) -> ChangeOp:
    if value == "add" or value == "remove":
        return value
    raise ArtifactError(f"unknown change operation {value!r} in the store's change log")


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Store:
    """Image records and vectors in ``store.sqlite``; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.path = path
        self.dim = int(self.get_meta("dim") or 0)
        self.uuid = self.get_meta("uuid") or ""

    @classmethod
    def create(cls, path: Path, *, dim: int) -> Store:
        """Create a new, empty store for ``dim``-dimensional vectors (the file must not exist)."""
        if dim < 1:
            raise ConfigError(f"vector dimension must be positive, got {dim}")
        if path.exists():
            raise ArtifactError(f"{path} already exists")
        conn = connect(path)
        with full_disk_raises(path):
            conn.executescript(SCHEMA + REQUEST_KEYS + TAGS + GRAPH)
        with transaction(conn, path):
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                             [("schema_version", str(SCHEMA_VERSION)), ("dim", str(dim)),
                              ("uuid", uuid.uuid4().hex), ("pruned_through", "0")])
        return cls(conn, path)

    @classmethod
    def open(cls, path: Path, *, dim: int | None = None, writable: bool = True) -> Store:
        """Open an existing store; :class:`ArtifactError` if missing, corrupt or of another dim.

        ``writable`` opens add the tables newer versions brought (``request_keys``, ``tags``,
        ``graph``).
        """
        if not path.is_file():
            raise ArtifactError(f"{path} is missing")
        conn = connect(path)
        try:
            store = cls(conn, path)
            version = store.get_meta("schema_version")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ArtifactError(f"{path} is not a readable cbir store: {exc}") from exc
        if version != str(SCHEMA_VERSION) or store.dim < 1:
            store.close()
            raise ArtifactError(f"{path} has schema version {version}, expected {SCHEMA_VERSION}")
        if dim is not None and dim != store.dim:
            store.close()
            raise ArtifactError(f"{path} holds {store.dim}-d vectors, expected {dim}")
        if writable:
            with store._lock, full_disk_raises(path):
                store._db().executescript(REQUEST_KEYS + TAGS + GRAPH)
        return store

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ArtifactError(f"{self.path} is closed")
        return self._conn

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db().execute(sql, tuple(params)).fetchall()

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, transaction(self._db(), self.path) as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None, *, graph: GraphWrite | None = None) -> list[int]:
        """Store records and their (n, dim) vectors in one transaction; returns the new ids.

        ``layouts`` (n, D), when given, are the images' layout descriptors (:mod:`._layouts`),
        committed in the same transaction; so are the rows ``graph`` writes (every change
        takes such a hook: :data:`~._graph_rows.GraphWrite`).
        """
        check_new_images(items)
        vectors = as_matrix(xb, self.dim, n=len(items))
        now = time.time()
        ids: list[int] = []
        with self._lock, transaction(self._db(), self.path) as db:
            ids.extend(_insert_images(db, items, vectors, now))
            if layouts is not None:
                insert_layouts(db, ids, layouts)
            db.executemany("INSERT INTO changes(op, image_id) VALUES ('add', ?)",
                           [(i,) for i in ids])
            if graph is not None:
                graph(db, [], ids, vectors)
        return ids

    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None, request_key: str | None = None,
                   fingerprint: str = "", key_ttl_s: float = DEFAULT_KEY_TTL_S,
                   graph: GraphWrite | None = None) -> AddOutcome:
        """Add in one transaction what is not stored yet (by sha256), remembering ``request_key``.

        See :mod:`._unique`: content already stored answers with its record
        (``duplicate``); a key already answered replays that answer and changes nothing.
        """
        check_new_images(items)
        vectors = as_matrix(xb, self.dim, n=len(items))
        now = time.time()
        with self._lock, transaction(self._db(), self.path) as db:
            if request_key is not None:
                saved = saved_outcome(db, request_key, fingerprint, now - key_ttl_s)
                if saved is not None:
                    return saved
            outcome = insert_unique(db, items, vectors, now)
            fresh = [r for r, a in enumerate(outcome.added) if not a.duplicate]
            if layouts is not None and outcome.new_ids:
                insert_layouts(db, outcome.new_ids, np.asarray(layouts)[fresh])
            if graph is not None and outcome.new_ids:
                graph(db, [], outcome.new_ids, vectors[fresh])
            if request_key is not None:
                save_outcome(db, request_key, fingerprint, outcome, now, now - key_ttl_s)
        return outcome

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome | None:
        """The answer an earlier :meth:`add_unique` saved under ``request_key``, if any."""
        with self._lock:
            return saved_outcome(self._db(), request_key, fingerprint, time.time() - key_ttl_s)

    def remove(self, ids: Iterable[int], *, graph: GraphWrite | None = None) -> list[int]:
        """Delete images in one transaction; returns the ids that existed (unknown ids ignored)."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        removed: list[int] = []
        with self._lock, transaction(self._db(), self.path) as db:
            for chunk in _chunks(wanted):
                present = {int(r[0]) for r in db.execute(
                    f"SELECT id FROM images WHERE id IN ({_marks(len(chunk))})", tuple(chunk))}
                removed += [i for i in chunk if i in present]
            for chunk in _chunks(removed):
                db.execute(f"DELETE FROM images WHERE id IN ({_marks(len(chunk))})", tuple(chunk))
            db.executemany("INSERT INTO changes(op, image_id) VALUES ('remove', ?)",
                           [(i,) for i in removed])
            if graph is not None and removed:
                graph(db, removed, [], np.empty((0, self.dim), dtype=np.float32))
        return removed

    def replace(self, old_ids: Sequence[int], items: Sequence[NewImage], xb: npt.ArrayLike,
                layouts: npt.ArrayLike | None = None, *, moves: Mapping[int, str] | None = None,
                graph: GraphWrite | None = None) -> tuple[list[int], list[int]]:
        """Re-point ``moves``, delete ``old_ids`` and store ``items`` in one transaction:
        (removed ids, new ids).

        What a re-added file whose content changed needs: its old record and the new one are
        never both visible, and a crash leaves the one or the other. A sync batch adds its moved
        files (:func:`~._imports.repoint_rows`: paths only, nothing logged, no graph row
        touched), so the whole batch is committed, or rolled back, at once.
        """
        check_new_images(items)
        vectors = as_matrix(xb, self.dim, n=len(items))
        wanted = list(dict.fromkeys(int(i) for i in old_ids))
        now = time.time()
        removed: list[int] = []
        ids: list[int] = []
        with self._lock, transaction(self._db(), self.path) as db:
            if moves:
                repoint_rows(db, moves)
            for chunk in _chunks(wanted):
                present = {int(r[0]) for r in db.execute(
                    f"SELECT id FROM images WHERE id IN ({_marks(len(chunk))})", tuple(chunk))}
                removed += [i for i in chunk if i in present]
                db.execute(f"DELETE FROM images WHERE id IN ({_marks(len(chunk))})", tuple(chunk))
            ids.extend(_insert_images(db, items, vectors, now))
            if layouts is not None:
                insert_layouts(db, ids, layouts)
            db.executemany("INSERT INTO changes(op, image_id) VALUES (?, ?)",
                           [("remove", i) for i in removed] + [("add", i) for i in ids])
            if graph is not None and (removed or ids):
                graph(db, removed, ids, vectors)
        return removed, ids

    def repoint(self, moves: Mapping[int, str]) -> list[int]:
        """New paths for stored ids, in one transaction (:mod:`._imports`): the ids changed."""
        with self._lock, transaction(self._db(), self.path) as db:
            return repoint_rows(db, moves)

    def import_records(self, records: Sequence[ImageRecord], xb: npt.ArrayLike,
                       layouts: Mapping[int, npt.ArrayLike] | None = None, *,
                       graph: GraphWrite | None = None) -> list[int]:
        """Records with their own ids and times, in one transaction (:mod:`._imports`), the
        kept graph's rows with them."""
        vectors = as_matrix(xb, self.dim, n=len(records))
        with self._lock, transaction(self._db(), self.path) as db:
            ids = import_rows(db, records, vectors, layouts)
            if graph is not None:
                graph(db, [], ids, vectors)
            return ids

    def get(self, ids: Sequence[int]) -> list[ImageRecord]:
        """Records of ``ids`` in the order asked; ids not in the store are left out."""
        found: dict[int, ImageRecord] = {}
        for chunk in _chunks([int(i) for i in ids]):
            with self._lock:
                db = self._db()
                rows = db.execute(f"SELECT {_RECORD_COLUMNS} FROM images "
                                  f"WHERE id IN ({_marks(len(chunk))})", tuple(chunk)).fetchall()
                found.update(_with_tags(db, rows))
        return [found[int(i)] for i in ids if int(i) in found]

    def get_one(self, image_id: int) -> ImageRecord:
        """One record; :class:`NotFoundError` if there is no image ``image_id``."""
        records = self.get([image_id])
        if not records:
            raise NotFoundError(f"no image with id {image_id}")
        return records[0]

    def find_by_sha256(self, sha256: str) -> list[ImageRecord]:
        with self._lock:
            db = self._db()
            rows = db.execute(f"SELECT {_RECORD_COLUMNS} FROM images WHERE sha256 = ? "
                              "ORDER BY id", (sha256,)).fetchall()
            return list(_with_tags(db, rows).values())

    def paths_present(self) -> set[str]:
        """Paths of every stored image (to skip them when resuming an indexing run)."""
        return {str(r[0]) for r in self._query("SELECT path FROM images")}

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM images")[0][0])

    def ids(self) -> I64:
        """Every stored id, ascending."""
        rows = self._query("SELECT id FROM images ORDER BY id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def ids_after(self, cursor: int, limit: int) -> list[int]:
        """Up to ``limit`` stored ids greater than ``cursor``, ascending."""
        rows = self._query("SELECT id FROM images WHERE id > ? ORDER BY id LIMIT ?",
                           (cursor, limit))
        return [int(r[0]) for r in rows]

    def ids_matching(self, folder: str | None, added_after: float | None,
                     added_before: float | None, tags: Sequence[str] = ()) -> list[int]:
        """Ids of the images under ``folder`` (an absolute path) added in ``[after, before)``
        holding every one of ``tags``, ascending (a range of the path index: ``folder/`` <= path
        < ``folder0``; the tags' primary key)."""
        clauses: list[str] = ["1"]
        params: list[Any] = []
        if tags:
            if not self._has_tags():
                return []
            clause, values = tagged_clause(tags)
            clauses.append(clause)
            params += values
        if folder is not None:
            base = folder.rstrip("/")
            clauses.append("path >= ? AND path < ?")
            params += [base + "/", base + "0"]  # "0" sorts right after "/"
        if added_after is not None:
            clauses.append("added_at >= ?")
            params.append(added_after)
        if added_before is not None:
            clauses.append("added_at < ?")
            params.append(added_before)
        rows = self._query(f"SELECT id FROM images WHERE {' AND '.join(clauses)} ORDER BY id",
                           params)
        return [int(r[0]) for r in rows]

    def _has_tags(self) -> bool:
        with self._lock:
            return has_tags(self._db())

    def retag(self, ids: Sequence[int], edit: TagEdit) -> list[ImageRecord]:
        """Apply ``edit`` to every image of ``ids`` in one transaction; their new records.
        :class:`NotFoundError` (and nothing changed) if one is not stored."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        with self._lock, transaction(self._db(), self.path) as db:
            present = {int(r[0]) for chunk in _chunks(wanted) for r in db.execute(
                f"SELECT id FROM images WHERE id IN ({_marks(len(chunk))})", tuple(chunk))}
            missing = [i for i in wanted if i not in present]
            if missing:
                raise NotFoundError(f"no image with id {', '.join(map(str, missing[:10]))}")
            for chunk in _chunks(wanted):
                retag_rows(db, chunk, edit)
        return self.get(wanted)

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use and how many images hold it."""
        with self._lock:
            return tag_counts(self._db())

    def dir_counts(self) -> dict[str, int]:
        """Every directory holding stored images (the path up to its last ``/``, without it)
        and how many images it holds directly (``rtrim`` strips the file name)."""
        rows = self._query("SELECT rtrim(path, replace(path, '/', '')) AS dir, COUNT(*) "
                           "FROM images GROUP BY dir")
        return {(str(d).rstrip("/") or "/"): int(n) for d, n in rows}

    def last_seq(self) -> int:
        """The largest change seq ever assigned (0 for a new store); survives pruning."""
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        return int(rows[0][0]) if rows else 0

    def pruned_through(self) -> int:
        """Changes with seq <= this were deleted by :meth:`prune_changes`."""
        return int(self.get_meta("pruned_through") or 0)

    def prune_changes(self, upto_seq: int) -> int:
        """Forget changes with seq <= ``upto_seq`` (once a durable snapshot contains them)."""
        with self._lock, transaction(self._db(), self.path) as db:
            deleted = db.execute("DELETE FROM changes WHERE seq <= ?", (upto_seq,)).rowcount
            db.execute("UPDATE meta SET value = MAX(CAST(value AS INTEGER), ?) "
                       "WHERE key = 'pruned_through'", (upto_seq,))
        return int(deleted)

    def changes_since(self, seq: int, batch: int = 10_000) -> Iterator[Change]:
        """Changes with seq > ``seq``, oldest first (read in pages, the lock released between)."""
        while True:
            rows = self._query("SELECT seq, op, image_id FROM changes WHERE seq > ? "
                               "ORDER BY seq LIMIT ?", (seq, batch))
            yield from (Change(int(s), _op(op), int(i)) for s, op, i in rows)
            if len(rows) < batch:
                return
            seq = int(rows[-1][0])

    def vectors(self, ids: Sequence[int]) -> F32:
        """``(len(ids), dim)`` vectors of ``ids`` in order; NotFoundError if one is gone."""
        wanted = [int(i) for i in ids]
        found: dict[int, F32] = {}
        for chunk in _chunks(list(dict.fromkeys(wanted))):
            rows = self._query(f"SELECT id, vector FROM images WHERE id IN ({_marks(len(chunk))})",
                               chunk)
            found.update((int(image_id), self._decode(blob)) for image_id, blob in rows)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFoundError(f"no stored vector for ids {missing[:10]}")
        if not wanted:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([found[i] for i in wanted])

    def vectors_present(self, ids: Sequence[int]) -> tuple[list[int], F32]:
        """Those of ``ids`` that are stored (in the order asked, once each) and their vectors:
        one read, unknown ids left out (an exact search among candidates)."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        found: dict[int, F32] = {}
        for chunk in _chunks(wanted):
            rows = self._query(f"SELECT id, vector FROM images WHERE id IN ({_marks(len(chunk))})",
                               chunk)
            found.update((int(image_id), self._decode(blob)) for image_id, blob in rows)
        present = [i for i in wanted if i in found]
        xb = (np.stack([found[i] for i in present]) if present
              else np.empty((0, self.dim), dtype=np.float32))
        return present, xb

    def layouts(self, ids: Sequence[int]) -> dict[int, F32]:
        """Layout descriptors of those ``ids`` that have one (none for older indexes)."""
        found: dict[int, F32] = {}
        for chunk in _chunks([int(i) for i in ids]):
            with self._lock:
                found.update(fetch_layouts(self._db(), chunk))
        return found

    def iter_all(self, batch: int = 10_000) -> Iterator[tuple[I64, F32]]:
        """Every (ids, xb) in ascending id order, ``batch`` rows at a time."""
        last = 0
        while True:
            rows = self._query("SELECT id, vector FROM images WHERE id > ? ORDER BY id LIMIT ?",
                               (last, batch))
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            blob = b"".join(r[1] for r in rows)
            if len(blob) != 4 * self.dim * len(rows):  # one of them has the wrong size
                for r in rows:
                    self._decode(r[1])
            yield ids, np.frombuffer(blob, dtype=np.float32).reshape(len(rows), self.dim)
            last = int(ids[-1])

    def graph_k(self) -> int:
        """Neighbours per row of the kept graph; 0 when the store keeps none."""
        return int(self.get_meta(GRAPH_K_KEY) or 0)

    def read_graph(self) -> tuple[I64, I64, npt.NDArray[np.float64]] | None:
        """The kept graph's (ids, nn, sims), ascending ids; None when the store keeps none."""
        k = self.graph_k()
        if not k:
            return None
        with self._lock:
            parts = list(iter_rows(self._db(), k))
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, k), np.int64), np.zeros((0, k))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    def write_graph(self, k: int, ids: I64, nn: I64, sims: npt.NDArray[np.float64]) -> None:
        """Replace the whole kept graph (a fresh build) in one transaction."""
        with self._lock, transaction(self._db(), self.path) as db:
            db.execute("DELETE FROM graph")
            write_rows(db, ids, nn, sims)
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                       (GRAPH_K_KEY, str(k)))

    def _decode(self, blob: bytes) -> F32:
        if len(blob) != 4 * self.dim:
            raise ArtifactError(f"{self.path}: stored vector of {len(blob)} bytes, "
                                f"expected {4 * self.dim}")
        return np.frombuffer(blob, dtype=np.float32)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _with_tags(db: sqlite3.Connection, rows: list[Any]) -> dict[int, ImageRecord]:
    """Records of ``rows`` (the record columns) with their tags, by id, in row order."""
    tags = read_tags(db, [int(r[0]) for r in rows])
    return {int(r[0]): ImageRecord(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]),
                                   float(r[5]), tags.get(int(r[0]), ())) for r in rows}


def _insert_images(db: sqlite3.Connection, items: Sequence[NewImage], vectors: F32,
                   now: float) -> list[int]:
    """Insert one row per image (record and vector); the new ids, in order."""
    ids: list[int] = []
    for item, vector in zip(items, vectors, strict=True):
        cur = db.execute(
            "INSERT INTO images(path, sha256, width, height, added_at, vector) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item.path, item.sha256, item.width, item.height, now, vector.tobytes()))
        ids.append(int(cur.lastrowid or 0))
        insert_tags(db, ids[-1], item.tags)
    return ids
