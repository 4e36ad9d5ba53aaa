"""What a :class:`~retrieval.index.milvus.MilvusIndex` writes: ids, images, layouts, content
claims and request keys (one object per open index; any number of processes at once).

Order of writes, so that what a Strong read sees is always whole: an add writes its layouts,
then (with a request key) its plan, then its images in one upsert; a remove deletes the images,
then their layouts and claims.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval.errors import StoreError
from retrieval.index._records import AddOutcome, NewImage, check_new_images
from retrieval.index.milvus._claims import claim, claims_of, create_claims, drop_claims
from retrieval.index.milvus._client import id_lock
from retrieval.index.milvus._guard import ensure_loaded
from retrieval.index.milvus._ids import take_tickets
from retrieval.index.milvus._keys import Plan, is_done, load_plan, mark_done, save_plan
from retrieval.index.milvus._layouts import delete_layouts, put_layouts
from retrieval.index.milvus._rows import (
    ONE_CALL_BYTES,
    existing_ids,
    fetch_records,
    upsert_images,
)
from retrieval.index.milvus._schema import TAGS_FIELD, get_text, put_text
from retrieval.index.milvus._unique import find_shas, plan_unique

__all__ = ["MilvusWriter"]

F32 = npt.NDArray[np.float32]


class MilvusWriter:
    """Writes to the collections of the image collection ``name`` (see the module)."""

    def __init__(self, client: Any, uri: str, name: str,
                 fields: Callable[[], list[str]]) -> None:
        self._client, self._uri, self._name = client, uri, name
        self._meta = f"{name}_meta"
        self._fields = fields  # the record's fields (``tags`` only where the collection has it)
        self._id_base: int | None = None
        self._legacy_ids = False
        self._claims_ready = False

    @property
    def _tags(self) -> bool:
        return TAGS_FIELD in self._fields()

    def _base(self) -> int | None:
        """The tickets' base (read once), or None for an older index's ``next_id`` counter."""
        if self._id_base is None and not self._legacy_ids:
            text = get_text(self._client, self._meta, "id_base")
            self._id_base = int(text) if text is not None else None
            self._legacy_ids = text is None  # a base may be negative (lowered by an import)
        return self._id_base

    def allocate(self, n: int) -> list[int]:
        """``n`` new ids: tickets (unique across processes, :mod:`._ids`), or an older index's
        counter (one writer at a time)."""
        base = self._base()
        if base is not None:
            return [k - base for k in take_tickets(self._client, self._name, n)]
        with id_lock(self._uri, self._name):
            start = int(get_text(self._client, self._meta, "next_id") or 1)
            put_text(self._client, self._meta, "next_id", str(start + n))
        return list(range(start, start + n))

    def reserve_through(self, top: int) -> None:
        """Make every later allocated id greater than ``top`` (lowers the tickets' base: records
        imported with their own ids, into a collection no other process writes meanwhile)."""
        base = self._base()
        if base is None:
            with id_lock(self._uri, self._name):
                start = int(get_text(self._client, self._meta, "next_id") or 1)
                put_text(self._client, self._meta, "next_id", str(max(start, top + 1)))
            return
        ticket = take_tickets(self._client, self._name, 1)[0]
        if ticket - base <= top:
            self._id_base = ticket - top - 1
            put_text(self._client, self._meta, "id_base", str(self._id_base))

    def add(self, items: Sequence[NewImage], vectors: F32,
            layouts: npt.ArrayLike | None) -> list[int]:
        check_new_images(items)
        ids = self.allocate(len(items))
        if layouts is not None:
            put_layouts(self._client, self._meta, ids, layouts)
        upsert_images(self._client, self._name, ids, items, vectors, tags=self._tags)
        return ids

    def remove(self, ids: Iterable[int]) -> list[int]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        present = [r.id for r in fetch_records(self._client, self._name, wanted, self._fields())]
        if present:
            self._client.delete(self._name, ids=present)
            delete_layouts(self._client, self._meta, present)
            if self._has_claims():
                drop_claims(self._client, self._name, present)
        return present

    def saved_outcome(self, request_key: str, fingerprint: str,
                      key_ttl_s: float) -> AddOutcome | None:
        """The committed answer of an add with ``request_key`` (every new image it planned is
        stored), replayed; None if there is none, or only an uncommitted plan (:mod:`._keys`)."""
        plan = load_plan(self._client, self._meta, request_key, time.time() - key_ttl_s)
        if plan is None:
            return None
        plan.check(fingerprint)
        planned = plan.outcome.new_ids
        if (not is_done(self._client, self._meta, request_key, plan)
                and len(existing_ids(self._client, self._name, planned)) < len(planned)):
            return None
        return AddOutcome(plan.outcome.added, replayed=True)

    def add_unique(self, items: Sequence[NewImage], vectors: F32, *,
                   layouts: npt.ArrayLike | None, request_key: str | None, fingerprint: str,
                   key_ttl_s: float) -> AddOutcome:
        """Add what no writer has stored (:mod:`._unique`); with a request key, replay or adopt
        its saved plan (:mod:`._keys`)."""
        check_new_images(items)
        plan = None
        if request_key is not None:
            saved = self.saved_outcome(request_key, fingerprint, key_ttl_s)
            if saved is not None:
                return saved
            plan = load_plan(self._client, self._meta, request_key, time.time() - key_ttl_s)
        self._ensure_claims()
        now = time.time()
        preset = ({a.sha256: a for a in plan.outcome.added if not a.duplicate}
                  if plan is not None else None)
        planned = plan_unique(
            items, now, known=find_shas(self._client, self._name, [i.sha256 for i in items],
                                   self._fields()),
            new_ids=self.allocate, preset=preset,
            claim=lambda wanted: claim(self._client, self._name, wanted, self._existing),
            records=lambda ids: fetch_records(self._client, self._name, ids, self._fields()))
        chosen = Plan(fingerprint, plan.at if plan else now, planned.outcome)
        if request_key is not None:
            save_plan(self._client, self._meta, request_key, chosen)
        rows = sorted(planned.writes)
        written = [planned.writes[r] for r in rows]
        if layouts is not None and rows:
            put_layouts(self._client, self._meta, [a.id for a in written],
                        np.asarray(layouts)[rows])
        if rows:
            upsert_images(self._client, self._name, [a.id for a in written],
                          [NewImage(a.path, a.sha256, a.width, a.height, a.tags) for a in written],
                          vectors[rows], tags=self._tags, added_at=[a.added_at for a in written],
                          max_bytes=ONE_CALL_BYTES)
        if request_key is not None:
            mark_done(self._client, self._meta, request_key, chosen)
        return AddOutcome(planned.outcome.added, replayed=plan is not None)

    def _existing(self, ids: list[int]) -> set[int]:
        return existing_ids(self._client, self._name, ids)

    def _has_claims(self) -> bool:
        return self._claims_ready or bool(self._client.has_collection(claims_of(self._name)))

    def _ensure_claims(self) -> None:
        """The claims collection (an index made before claims gets it at its first such add)."""
        if self._claims_ready:
            return
        if not self._client.has_collection(claims_of(self._name)):
            try:
                create_claims(self._client, self._name)
            except StoreError:  # another writer created it meanwhile
                if not self._client.has_collection(claims_of(self._name)):
                    raise
        ensure_loaded(self._client, [claims_of(self._name)], self._uri)
        self._claims_ready = True
