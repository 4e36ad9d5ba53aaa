"""Which records a filtered search may return: under a folder, added in a time range, holding
every one of some tags.

A folder is named relative to the collection's roots: the indexed root (``/`` when the index
records none) and any further ones the filter names (the service's uploads folder, whose
sub-folders hold uploads given a ``folder``), so ``folder=F`` matches the images under
``<root>/F`` for every root: :func:`~retrieval.index.folder_of` a record's path is ``F`` or
under it.

A :class:`RecordFilter` is answered by the store when it :class:`SelectsRecords` (FAISS+SQLite: a
range of the path index and the tags' primary key; Milvus: a scalar expression on its ``path``,
``added_at`` and ``tags`` fields), else evaluated on the records (paged in id order through
:meth:`IndexStore.ids_after`, so it works on every engine); the search then runs *among* the
matching ids (exact on the FAISS+SQLite engine, Milvus's ``id in [...]`` expression on Milvus), so
when at least ``k`` images match, ``k`` come back: the same as an exact search among them. The scan
(other engines) reads every record per search (about 17 µs per record measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from retrieval.errors import ConfigError
from retrieval.index._protocol import IndexStore, KnowsSources, SelectsRecords
from retrieval.index._records import ImageRecord
from retrieval.index._tags import clean_tags

__all__ = ["SCAN_PAGE", "RecordFilter", "clean_folder", "id_page", "matching_ids", "scanned_ids",
           "source_roots"]

#: records read per page of a filter's scan.
SCAN_PAGE = 5000


@dataclass(frozen=True)
class RecordFilter:
    """``folder``: only images under this folder, relative to the indexed root (or absolute);
    ``added_after`` / ``added_before``: ``added_after <= added_at < added_before`` (seconds);
    ``tags``: images holding every one of them (cleaned: sorted, unique); ``roots``: absolute
    folders a relative ``folder`` is also looked for under, besides the indexed root (the
    service's uploads folder)."""

    folder: str | None = None
    added_after: float | None = None
    added_before: float | None = None
    tags: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()

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

    def folder_paths(self, root: str | None) -> tuple[str, ...]:
        """The folder as absolute POSIX paths (a relative one under ``root`` and each of
        :attr:`roots`), none without a folder."""
        if self.folder is None:
            return ()
        paths = (PurePath(r, self.folder).as_posix() for r in (root or "/", *self.roots))
        return tuple(dict.fromkeys(paths))

    def matches(self, record: ImageRecord, root: str | None) -> bool:
        if self.added_after is not None and record.added_at < self.added_after:
            return False
        if self.added_before is not None and record.added_at >= self.added_before:
            return False
        if not set(self.tags) <= set(record.tags):
            return False
        folders = self.folder_paths(root)
        parent = PurePath(record.path).parent
        return not folders or any(parent.is_relative_to(f) for f in folders)


def clean_folder(text: str) -> str:
    """A relative folder name as a ``folder`` filter reads it, normalised (POSIX, ``""`` for the
    root itself): :class:`ConfigError` for an absolute one, one with ``..`` or a control
    character (an upload's ``folder``, a sub-folder of the uploads folder)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"folder {text!r} must not contain control characters")
    path = PurePosixPath(text)
    if path.is_absolute():
        raise ConfigError(f"folder {text!r} must be relative (to the uploads folder), not "
                          f"absolute")
    if ".." in path.parts:
        raise ConfigError(f"folder {text!r} must not contain '..'")
    return "" if not path.parts else path.as_posix()


def source_roots(index: IndexStore, also: Sequence[str] = ()) -> tuple[str, ...]:
    """The roots folders are named in: the indexed root (``/`` when none is recorded), then
    ``also``; what :func:`~retrieval.index.folder_of` takes."""
    root = index.images_root if isinstance(index, KnowsSources) else None
    return (root or "/", *also)


def matching_ids(index: IndexStore, where: RecordFilter) -> list[int]:
    """Every stored id whose record ``where`` matches, ascending: from the store's own indexes
    when it :class:`SelectsRecords`, else by a scan of the records in pages."""
    root = index.images_root if isinstance(index, KnowsSources) else None
    if isinstance(index, SelectsRecords):
        folders: tuple[str | None, ...] = where.folder_paths(root) or (None,)
        found = [index.ids_matching(f, where.added_after, where.added_before, where.tags)
                 for f in folders]
        return found[0] if len(found) == 1 else sorted(set().union(*found))
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
