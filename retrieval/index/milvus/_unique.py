"""Content dedupe the Milvus way: one record per sha256, across every writing process.

:func:`plan_unique` works out an add's answer: an item whose content is stored answers with the
oldest record of it (``duplicate``); the first item of each new content gets an id (a ticket, or
the one a saved plan gave it: :mod:`._keys`) and *claims* the content (:mod:`._claims`); a
content claimed first by another writer answers with that writer's record. The caller writes the
images that won, in one upsert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from retrieval.index._records import Added, AddOutcome, ImageRecord, NewImage
from retrieval.index.milvus._client import record

__all__ = ["Planned", "find_sha256", "find_shas", "plan_unique"]

_HEX = re.compile(r"[0-9a-f]{64}")
SHAS_PER_QUERY = 256


def find_sha256(client: Any, collection: str, sha256: str,
                fields: list[str]) -> list[ImageRecord]:
    """Records of the images with this content, oldest first (``fields``: the record's)."""
    if not _HEX.fullmatch(sha256):
        return []
    rows = client.query(collection, filter=f'sha256 == "{sha256}"', output_fields=fields,
                        consistency_level="Strong")
    return sorted((record(r) for r in rows), key=lambda r: r.id)


def find_shas(client: Any, collection: str, shas: Sequence[str],
              fields: list[str]) -> dict[str, ImageRecord]:
    """The oldest record of each content stored, by sha256 (``fields``: the record's)."""
    wanted = sorted({s for s in shas if _HEX.fullmatch(s)})
    out: dict[str, ImageRecord] = {}
    for start in range(0, len(wanted), SHAS_PER_QUERY):
        rows = client.query(collection, output_fields=fields, consistency_level="Strong",
                            filter=f"sha256 in {json.dumps(wanted[start:start + SHAS_PER_QUERY])}")
        for r in sorted((record(r) for r in rows), key=lambda r: r.id):
            out.setdefault(r.sha256, r)
    return out


@dataclass(frozen=True)
class Planned:
    """An add's answer, and which of its items this add writes (row -> its record)."""

    outcome: AddOutcome
    writes: dict[int, Added]


def plan_unique(items: Sequence[NewImage], now: float, *,
                known: Mapping[str, ImageRecord],
                new_ids: Callable[[int], list[int]],
                claim: Callable[[dict[str, int]], dict[str, int]],
                records: Callable[[Sequence[int]], list[ImageRecord]],
                preset: Mapping[str, Added] | None = None) -> Planned:
    """See the module; ``preset``: sha256 -> the record a saved plan gave that content."""
    preset = preset or {}
    first: dict[str, int] = {}
    for row, item in enumerate(items):
        if item.sha256 not in known:
            first.setdefault(item.sha256, row)
    fresh = [s for s in first if s not in preset]
    ids = {**{s: a.id for s, a in preset.items() if s in first},
           **dict(zip(fresh, new_ids(len(fresh)), strict=True))}
    held = claim(ids)
    others = {r.id: r for r in records([i for s, i in held.items() if i != ids[s]])}
    writes: dict[int, Added] = {}
    by_sha: dict[str, Added] = {}
    for sha, row in first.items():
        if held[sha] != ids[sha]:
            r = others[held[sha]]
            by_sha[sha] = Added(r.id, r.path, r.sha256, r.width, r.height, r.added_at, r.tags,
                                duplicate=True)
            continue
        item = items[row]
        writes[row] = (preset[sha] if sha in preset else
                       Added(ids[sha], item.path, sha, item.width, item.height, now,
                             item.tags, duplicate=False))
    added = []
    for row, item in enumerate(items):
        if row in writes:
            added.append(writes[row])
        elif item.sha256 in by_sha:
            added.append(by_sha[item.sha256])
        elif item.sha256 in known:
            r = known[item.sha256]
            added.append(Added(r.id, r.path, r.sha256, r.width, r.height, r.added_at, r.tags,
                               duplicate=True))
        else:  # a second item of a content this add writes
            w = writes[first[item.sha256]]
            added.append(Added(w.id, w.path, w.sha256, w.width, w.height, w.added_at, w.tags,
                               duplicate=True))
    return Planned(AddOutcome(added), writes)
