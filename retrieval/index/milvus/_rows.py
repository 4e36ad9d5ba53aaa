"""Reading and writing the image rows of a Milvus collection (functions of a pymilvus client).

Every read uses Strong consistency, so it sees every acknowledged change of any process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError, NotFoundError, StoreError, StoreTimeoutError
from retrieval.index._records import ImageRecord, NewImage
from retrieval.index.milvus._client import record
from retrieval.index.milvus._schema import TAGS_FIELD

__all__ = ["ONE_CALL_BYTES", "existing_ids", "fetch_records", "fetch_vectors", "import_images",
           "repoint_images", "search_rows",
           "stored_paths", "upsert_images", "wait_indexed"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

INSERT_BYTES = 8 * 2**20      # one insert RPC at most (a server's gRPC limit is 64 MiB)
ONE_CALL_BYTES = 48 * 2**20   # an idempotent add's rows: one upsert (HTTP bodies are smaller)
GET_IDS = 1000                # ids per get()
PATH_PAGE = 10_000            # rows per page of stored_paths()
FLUSH_POLL_S = 0.5


def upsert_images(client: Any, name: str, ids: Sequence[int], items: Sequence[NewImage],
                  vectors: F32, *, tags: bool, added_at: Sequence[float] | None = None,
                  max_bytes: int = INSERT_BYTES) -> None:
    """One row per image (added now, or at ``added_at``), in upserts of at most ``max_bytes``
    (Milvus gives one upsert one timestamp: a Strong read sees all of its rows or none).
    ``tags``: the collection has the field; else an item with tags is refused."""
    if not tags and any(item.tags for item in items):
        raise ConfigError(f"collection {name!r} was made before tags: it cannot hold any")
    now = time.time()
    times = list(added_at) if added_at is not None else [now] * len(ids)
    rows: list[dict[str, Any]] = []
    size = 0
    for image_id, item, vector, at in zip(ids, items, vectors, times, strict=True):
        rows.append({"id": image_id, "vector": vector, "path": item.path, "sha256": item.sha256,
                     "width": item.width, "height": item.height, "added_at": at,
                     **({TAGS_FIELD: list(item.tags)} if tags else {})})
        size += vector.nbytes + len(item.path.encode()) + 128
        if size >= max_bytes:
            client.upsert(name, rows)
            rows, size = [], 0
    if rows:
        client.upsert(name, rows)


def import_images(client: Any, name: str, records: Sequence[ImageRecord],
                  vectors: F32, *, tags: bool) -> None:
    """Rows with the records' own ids, ``added_at`` and tags (a migration), in bounded upserts
    (``tags``: the collection has the field; else a record with tags is refused)."""
    if not tags and any(r.tags for r in records):
        raise ConfigError(f"collection {name!r} was made before tags: it cannot hold any")
    rows: list[dict[str, Any]] = []
    size = 0
    for r, vector in zip(records, vectors, strict=True):
        rows.append({"id": int(r.id), "vector": vector, "path": r.path, "sha256": r.sha256,
                     "width": r.width, "height": r.height, "added_at": float(r.added_at),
                     **({TAGS_FIELD: list(r.tags)} if tags else {})})
        size += vector.nbytes + len(r.path.encode()) + 128
        if size >= INSERT_BYTES:
            client.upsert(name, rows)
            rows, size = [], 0
    if rows:
        client.upsert(name, rows)


def repoint_images(client: Any, name: str, moves: dict[int, str],
                   fields: list[str]) -> list[int]:
    """Each stored row upserted again with its new path (id, vector, ``added_at`` kept); the
    ids that existed. One upsert per :data:`GET_IDS` rows: atomic per row, not per call."""
    done: list[int] = []
    wanted = sorted(int(i) for i in moves)
    for start in range(0, len(wanted), GET_IDS):
        rows = client.get(name, ids=wanted[start:start + GET_IDS],
                          output_fields=[*fields, "vector"])
        fresh = [{**r, "path": moves[int(r["id"])],
                  "vector": np.asarray(r["vector"], dtype=np.float32)} for r in rows]
        if fresh:
            client.upsert(name, fresh)
            done.extend(int(r["id"]) for r in fresh)
    return sorted(done)


def search_rows(client: Any, name: str, queries: F32, k: int, *, ids: Sequence[int] | None,
                fields: list[str], params: dict[str, Any],
                metric: str) -> tuple[F32, I64, list[list[dict[str, Any]]]]:
    """D, I (nq, k) as FAISS gives them (-1 / worst padded) and each hit's ``fields``."""
    worst = -np.inf if metric == "inner_product" else np.inf
    distances = np.full((len(queries), k), worst, np.float32)
    labels = np.full((len(queries), k), -1, np.int64)
    if ids is not None and not len(ids):
        return distances, labels, [[] for _ in queries]
    flt = f"id in {[int(i) for i in ids]}" if ids is not None else ""
    res = client.search(name, data=[q.tolist() for q in queries], limit=k, filter=flt,
                        output_fields=fields, anns_field="vector", search_params=params,
                        consistency_level="Strong")
    entities: list[list[dict[str, Any]]] = []
    for q, hits in enumerate(res):
        for j, hit in enumerate(list(hits)[:k]):
            labels[q, j], distances[q, j] = int(hit["id"]), float(hit["distance"])
        entities.append([{**hit.get("entity", {}), "id": hit["id"]} for hit in list(hits)[:k]])
    return distances, labels, entities


def fetch_records(client: Any, name: str, ids: Sequence[int],
                  fields: list[str]) -> list[ImageRecord]:
    """Records of ``ids`` in the order asked, unknown ids left out (``fields``: the record's)."""
    wanted = [int(i) for i in ids]
    found: dict[int, ImageRecord] = {}
    for start in range(0, len(wanted), GET_IDS):
        rows = client.get(name, ids=wanted[start:start + GET_IDS], output_fields=fields)
        found.update((int(r["id"]), record(r)) for r in rows)
    return [found[i] for i in wanted if i in found]


def existing_ids(client: Any, name: str, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that are stored."""
    wanted = [int(i) for i in ids]
    out: set[int] = set()
    for start in range(0, len(wanted), GET_IDS):
        out.update(int(r["id"]) for r in client.get(name, ids=wanted[start:start + GET_IDS],
                                                    output_fields=["id"]))
    return out


def fetch_vectors(client: Any, name: str, ids: Sequence[int], d: int) -> F32:
    """The stored vectors of ``ids`` in order; :class:`NotFoundError` if one is unknown."""
    wanted = [int(i) for i in ids]
    got = client.get(name, ids=wanted, output_fields=["vector"]) if wanted else []
    rows = {int(r["id"]): r["vector"] for r in got}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise NotFoundError(f"no image with id {', '.join(map(str, missing))}")
    out: F32 = np.asarray([rows[i] for i in wanted], dtype=np.float32).reshape(-1, d)
    return out


def stored_paths(client: Any, name: str) -> set[str]:
    """Every stored path, read in pages of :data:`PATH_PAGE` (ids may be sparse)."""
    out: set[str] = set()
    pages = client.query_iterator(name, batch_size=PATH_PAGE, filter="id >= 0",
                                  output_fields=["path"])
    try:
        while rows := pages.next():
            out.update(str(r["path"]) for r in rows)
    finally:
        pages.close()
    return out


def ids_after(client: Any, name: str, cursor: int, limit: int) -> list[int]:
    """Up to ``limit`` stored ids greater than ``cursor``, ascending (ids may be sparse: every
    id after the cursor is read, in pages of :data:`PATH_PAGE`, then sorted)."""
    out: list[int] = []
    pages = client.query_iterator(name, batch_size=PATH_PAGE, filter=f"id > {int(cursor)}",
                                  output_fields=["id"])
    try:
        while rows := pages.next():
            out.extend(int(r["id"]) for r in rows)
    finally:
        pages.close()
    return sorted(out)[:limit]


def wait_indexed(client: Any, name: str, timeout_s: float, where: str, *,
                 server: bool = True) -> None:
    """Seal the growing segment, wait until Milvus has indexed it and until searches use that
    index; :class:`StoreTimeoutError` if rows still wait after ``timeout_s`` (Milvus is polled
    at least once).

    A server searches a segment that is still *growing* on its query node through an interim
    index (recall@10 0.73 here, whatever ``ef``) until the node has loaded the sealed, indexed
    one, seconds after the index is built: :func:`_growing_rows` waits for that too (``server``:
    Milvus Lite has neither the interim index nor the call)."""
    client.flush(name)
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.describe_index(name, index_name="vector")
        pending = int(info.get("pending_index_rows", 0)) or (
            _growing_rows(client, name) if server else 0)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise StoreTimeoutError(
                f"{where}: {pending} rows still wait for their index after {timeout_s:g} s (they "
                "are stored; flush again, or allow a longer timeout)")
        time.sleep(FLUSH_POLL_S)


def _growing_rows(client: Any, name: str) -> int:
    """Rows the query nodes do not serve from sealed, loaded segments yet (0 where Milvus cannot
    say). Growing segments are not listed at all, hence the count."""
    try:
        segments = client.list_loaded_segments(name)
    except StoreError:
        return 0
    sealed = sum(int(s.num_rows) for s in segments
                 if getattr(s, "state_name", "") in ("Sealed", "Flushed"))
    rows = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return max(0, int(rows[0]["count(*)"]) - sealed)
