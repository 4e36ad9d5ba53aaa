"""What the service asks of any store beyond the seam's core, done the Milvus way.

Content dedupe (one record per sha256), the images root, and "following" (a Milvus collection is
always current, so there is nothing to catch up with). What Milvus cannot give is said plainly:
an add of several files is not one transaction there (upserts in bounded batches), and request
keys (``Idempotency-Key``) need the FAISS+SQLite store, which commits the key with the add.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval._arrays import as_matrix
from retrieval.errors import ConfigError, NotFoundError
from retrieval.index._milvus_client import record
from retrieval.index._milvus_schema import RECORD_FIELDS, get_text, put_text
from retrieval.index._store import DEFAULT_KEY_TTL_S, ImageRecord, NewImage
from retrieval.index._unique import Added, AddOutcome

__all__ = ["MilvusExtras"]

F32 = npt.NDArray[np.float32]

_HEX = re.compile(r"[0-9a-f]{64}")


class MilvusExtras:
    """Mixed into :class:`~retrieval.index._milvus.MilvusIndex` (which provides the attributes)."""

    _client: Any
    _name: str
    _meta: str

    def add(self, items: Sequence[NewImage], xb: npt.ArrayLike,
            layouts: npt.ArrayLike | None = None) -> list[int]:
        raise NotImplementedError  # provided by MilvusIndex

    @property
    def d(self) -> int:
        raise NotImplementedError  # provided by MilvusIndex

    def find_sha256(self, sha256: str) -> list[ImageRecord]:
        """Records of the images with this content, oldest first."""
        if not _HEX.fullmatch(sha256):
            return []
        rows = self._client.query(self._name, filter=f'sha256 == "{sha256}"',
                                  output_fields=RECORD_FIELDS, consistency_level="Strong")
        return sorted((record(r) for r in rows), key=lambda r: r.id)

    def add_unique(self, items: Sequence[NewImage], xb: npt.ArrayLike, *,
                   layouts: npt.ArrayLike | None = None, request_key: str | None = None,
                   fingerprint: str = "", key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome:
        """Add what is not stored yet (by sha256); the rest answer with their existing record."""
        if request_key is not None:
            raise ConfigError("Idempotency-Key needs the FAISS+SQLite store (it commits the key "
                              "with the add); a Milvus store cannot")
        vectors = as_matrix(xb, self.d, n=len(items))
        known: dict[str, ImageRecord] = {}
        fresh: list[int] = []
        for row, item in enumerate(items):
            found = self.find_sha256(item.sha256)
            if found:
                known[item.sha256] = found[0]
            elif item.sha256 not in {items[r].sha256 for r in fresh}:
                fresh.append(row)
        ids = dict(zip(fresh, self.add([items[r] for r in fresh], vectors[fresh]), strict=True))
        stored = {r.id: r for r in self._records(list(ids.values()))}
        first = {items[r].sha256: ids[r] for r in fresh}
        added = []
        for row, item in enumerate(items):
            if row in ids:
                r = stored[ids[row]]
                added.append(Added(r.id, r.path, r.sha256, r.width, r.height, r.added_at, False))
            else:
                r = known.get(item.sha256) or stored[first[item.sha256]]
                added.append(Added(r.id, r.path, r.sha256, r.width, r.height, r.added_at, True))
        return AddOutcome(added)

    def _records(self, ids: Sequence[int]) -> list[ImageRecord]:
        raise NotImplementedError  # provided by MilvusIndex.records

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome | None:
        return None  # request keys are never saved in a Milvus store (see add_unique)

    def stored_vectors(self, ids: Sequence[int]) -> F32:
        """The stored vectors of ``ids`` in order; :class:`NotFoundError` if one is unknown."""
        wanted = [int(i) for i in ids]
        got = self._client.get(self._name, ids=wanted, output_fields=["vector"]) if wanted else []
        rows = {int(r["id"]): r["vector"] for r in got}
        missing = [i for i in wanted if i not in rows]
        if missing:
            raise NotFoundError(f"no image with id {', '.join(map(str, missing))}")
        out: F32 = np.asarray([rows[i] for i in wanted], dtype=np.float32).reshape(-1, self.d)
        return out

    def indexed_vectors(self, ids: Sequence[int]) -> F32:
        """What search compares against: the stored vectors (a Milvus store has no DBA)."""
        return self.stored_vectors(ids)

    def refresh(self) -> bool:
        """Nothing to catch up with: every read goes to the collection (Strong consistency)."""
        return False

    @property
    def images_root(self) -> str | None:
        return get_text(self._client, self._meta, "images_root") or None

    def set_images_root(self, folder: str) -> None:
        put_text(self._client, self._meta, "images_root", folder)
