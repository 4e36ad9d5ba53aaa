"""Filters, tags and folder counts on a Milvus collection's scalar fields.

A filter is one boolean expression: ``path >= "<folder>/" and path < "<folder>0"`` (a string
range, as the SQLite path index answers it), ``added_at`` bounds and
``array_contains_all(tags, [...])``, read with a query iterator (ids may be sparse). A tag change
upserts the whole row (Milvus updates rows by replacing them): the stored vector is written back
unchanged, nothing is embedded again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

from retrieval.errors import NotFoundError
from retrieval.index._records import ImageRecord
from retrieval.index._tags import TagEdit
from retrieval.index.milvus._client import record
from retrieval.index.milvus._rows import GET_IDS, PATH_PAGE
from retrieval.index.milvus._schema import RECORD_FIELDS, TAGS_FIELD

__all__ = ["QUERY_LIMIT", "count_dirs", "count_tags", "filter_expression", "matching_ids",
           "retag_rows"]


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a double-quoted string with escapes


def filter_expression(folder: str | None, added_after: float | None,
                      added_before: float | None, tags: Sequence[str]) -> str:
    """The Milvus expression of a filter (``id >= 0`` when there is none)."""
    parts = ["id >= 0"]
    if folder is not None:
        base = folder.rstrip("/")
        parts.append(f"path >= {_literal(base + '/')} and path < {_literal(base + '0')}")
    if added_after is not None:
        parts.append(f"added_at >= {float(added_after)!r}")
    if added_before is not None:
        parts.append(f"added_at < {float(added_before)!r}")
    if tags:
        parts.append(f"array_contains_all({TAGS_FIELD}, [{', '.join(map(_literal, tags))}])")
    return " and ".join(f"({p})" for p in parts)


#: rows one plain query may return (Milvus's limit on offset + limit); more: the iterator.
QUERY_LIMIT = 16_384


def _rows(client: Any, name: str, expression: str, fields: list[str]) -> Iterator[dict[str, Any]]:
    """Every row ``expression`` matches: one query when they fit (three times faster than the
    iterator on Milvus Lite, measured), else a query iterator (ids may be sparse)."""
    first = client.query(name, filter=expression, output_fields=fields, limit=QUERY_LIMIT,
                         consistency_level="Strong")
    if len(first) < QUERY_LIMIT:
        yield from first
        return
    pages = client.query_iterator(name, batch_size=PATH_PAGE, filter=expression,
                                  output_fields=fields)
    try:
        while rows := pages.next():
            yield from rows
    finally:
        pages.close()


def matching_ids(client: Any, name: str, expression: str) -> list[int]:
    """Every id whose row ``expression`` matches, ascending."""
    return sorted(int(r["id"]) for r in _rows(client, name, expression, ["id"]))


def retag_rows(client: Any, name: str, ids: Sequence[int], edit: TagEdit) -> list[ImageRecord]:
    """Apply ``edit`` to the rows of ``ids`` (all of them or, if one is unknown, none)."""
    wanted = list(dict.fromkeys(int(i) for i in ids))
    fields = [*RECORD_FIELDS, TAGS_FIELD, "vector"]
    rows: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), GET_IDS):
        got = client.get(name, ids=wanted[start:start + GET_IDS], output_fields=fields)
        rows.update((int(r["id"]), dict(r)) for r in got)
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise NotFoundError(f"no image with id {', '.join(map(str, missing[:10]))}")
    new = [{**rows[i], TAGS_FIELD: list(edit.applied(rows[i].get(TAGS_FIELD) or ()))}
           for i in wanted]
    for start in range(0, len(new), GET_IDS):
        client.upsert(name, new[start:start + GET_IDS])
    return [record(r) for r in new]


def count_tags(client: Any, name: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in _rows(client, name, "id >= 0", [TAGS_FIELD]):
        counts.update(str(t) for t in row.get(TAGS_FIELD) or ())
    return dict(counts)


def count_dirs(client: Any, name: str) -> dict[str, int]:
    return dict(Counter(PurePosixPath(str(r["path"])).parent.as_posix()
                        for r in _rows(client, name, "id >= 0", ["path"])))
