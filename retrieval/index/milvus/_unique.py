"""Content dedupe the Milvus way: one record per sha256, found by a scalar query.

What Milvus cannot give is left out rather than faked: an add of several files is not one
transaction there (upserts in bounded batches), and request keys (``Idempotency-Key``) need the
FAISS+SQLite store, which commits the key with the add — a :class:`MilvusIndex` does not declare
:class:`~retrieval.index.KeepsRequestKeys`, and the service refuses such a request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval.index._records import Added, AddOutcome, ImageRecord, NewImage
from retrieval.index.milvus._client import record

__all__ = ["find_sha256", "unique_add"]

F32 = npt.NDArray[np.float32]

_HEX = re.compile(r"[0-9a-f]{64}")


def find_sha256(client: Any, collection: str, sha256: str,
                fields: list[str]) -> list[ImageRecord]:
    """Records of the images with this content, oldest first (``fields``: the record's)."""
    if not _HEX.fullmatch(sha256):
        return []
    rows = client.query(collection, filter=f'sha256 == "{sha256}"', output_fields=fields,
                        consistency_level="Strong")
    return sorted((record(r) for r in rows), key=lambda r: r.id)


def unique_add(items: Sequence[NewImage], vectors: F32, *,
               find: Callable[[str], list[ImageRecord]],
               add: Callable[[Sequence[NewImage], F32], list[int]],
               records: Callable[[Sequence[int]], list[ImageRecord]]) -> AddOutcome:
    """Add the items whose content is not stored yet (the first of equal ones in the call); the
    others answer with the existing record, flagged ``duplicate``."""
    known: dict[str, ImageRecord] = {}
    fresh: list[int] = []
    for row, item in enumerate(items):
        found = find(item.sha256)
        if found:
            known[item.sha256] = found[0]
        elif item.sha256 not in {items[r].sha256 for r in fresh}:
            fresh.append(row)
    ids = dict(zip(fresh, add([items[r] for r in fresh], vectors[fresh]), strict=True))
    stored = {r.id: r for r in records(list(ids.values()))}
    first = {items[r].sha256: ids[r] for r in fresh}
    added = []
    for row, item in enumerate(items):
        if row in ids:
            r = stored[ids[row]]
            added.append(Added(r.id, r.path, r.sha256, r.width, r.height, r.added_at, r.tags,
                               duplicate=False))
        else:
            r = known.get(item.sha256) or stored[first[item.sha256]]
            added.append(Added(r.id, r.path, r.sha256, r.width, r.height, r.added_at, r.tags,
                               duplicate=True))
    return AddOutcome(added)
