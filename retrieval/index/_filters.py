"""Which records a filtered search may return: under a folder, added in a time range, holding
every one of some tags.

A :class:`RecordFilter` is answered by the store when it :class:`SelectsRecords` (FAISS+SQLite: a
range of the path index and the tags' primary key; Milvus: a scalar expression on its ``path``,
``added_at`` and ``tags`` fields), else evaluated on the records (paged in id order through
:meth:`IndexStore.ids_after`, so it works on every engine); the search then runs *among* the
matching ids (exact on the FAISS+SQLite engine, Milvus's ``id in [...]`` expression on Milvus), so
when at least ``k`` images match, ``k`` come back: the same as an exact search among them. The scan
(other engines) reads every record per search (about 17 µs per record measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from retrieval.errors import ConfigError
from retrieval.index._protocol import IndexStore, KnowsSources, SelectsRecords
from retrieval.index._records import ImageRecord
from retrieval.index._tags import clean_tags

__all__ = ["SCAN_PAGE", "RecordFilter", "id_page", "matching_ids", "scanned_ids"]

#: records read per page of a filter's scan.
SCAN_PAGE = 5000


@dataclass(frozen=True)
class RecordFilter:
    """``folder``: only images under this folder, relative to the indexed root (or absolute);
    ``added_after`` / ``added_before``: ``added_after <= added_at < added_before`` (seconds);
    ``tags``: images holding every one of them (cleaned: sorted, unique)."""

    folder: str | None = None
    added_after: float | None = None
    added_before: float | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", clean_tags(self.tags))
        if self.folder is not None and ".." in PurePath(self.folder).parts:
            raise ConfigError(f"folder {self.folder!r} must not contain '..'")
        if (self.added_after is not None and self.added_before is not None
                and self.added_before <= self.added_after):
            raise ConfigError("added_before must be later than added_after")

    @property
    def active(self) -> bool:
        return (self.folder, self.added_after, self.added_before) != (None, None, None) \
            or bool(self.tags)

    def folder_path(self, root: str | None) -> str | None:
        """The folder as an absolute POSIX path (relative ones under ``root``)."""
        return None if self.folder is None else PurePath(root or "/", self.folder).as_posix()

    def matches(self, record: ImageRecord, root: str | None) -> bool:
        if self.added_after is not None and record.added_at < self.added_after:
            return False
        if self.added_before is not None and record.added_at >= self.added_before:
            return False
        if not set(self.tags) <= set(record.tags):
            return False
        folder = self.folder_path(root)
        return folder is None or PurePath(record.path).parent.is_relative_to(folder)


def matching_ids(index: IndexStore, where: RecordFilter) -> list[int]:
    """Every stored id whose record ``where`` matches, ascending: from the store's own indexes
    when it :class:`SelectsRecords`, else by a scan of the records in pages."""
    root = index.images_root if isinstance(index, KnowsSources) else None
    if isinstance(index, SelectsRecords):
        return index.ids_matching(where.folder_path(root), where.added_after, where.added_before,
                                  where.tags)
    return scanned_ids(index, where, root)


def scanned_ids(index: IndexStore, where: RecordFilter, root: str | None) -> list[int]:
    """:func:`matching_ids` by reading every record (any engine)."""
    found: list[int] = []
    cursor = 0
    while ids := index.ids_after(cursor, SCAN_PAGE):
        found.extend(r.id for r in index.records(ids) if where.matches(r, root))
        cursor = ids[-1]
    return found


def id_page(index: IndexStore, cursor: int, limit: int,
            where: RecordFilter | None = None) -> list[int]:
    """Up to ``limit`` ids greater than ``cursor``, ascending, among those ``where`` matches."""
    if where is None or not where.active:
        return index.ids_after(cursor, limit)
    return [i for i in matching_ids(index, where) if i > cursor][:limit]
