"""What a collection holds, by folder and by tag, with counts (``GET /folders``, ``GET /tags``).

Folders are directories relative to the indexed root (the root itself is ``"."``), each with the
images directly in it (``images``) and those anywhere under it (``under``: what a ``folder``
filter matches). Images stored outside the root (uploads) are counted in
:attr:`Folders.elsewhere`. A store that :class:`CountsFolders` / :class:`KeepsTags` answers from
its own indexes; any other is scanned record by record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from retrieval.index._filters import SCAN_PAGE
from retrieval.index._protocol import CountsFolders, IndexStore, KeepsTags, KnowsSources

__all__ = ["FolderCount", "Folders", "folder_counts", "folder_tree", "tag_counts"]


@dataclass(frozen=True)
class FolderCount:
    folder: str
    images: int
    under: int


@dataclass(frozen=True)
class Folders:
    folders: list[FolderCount]
    elsewhere: int


def _scan(index: IndexStore) -> tuple[Counter[str], Counter[str]]:
    dirs: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    cursor = 0
    while ids := index.ids_after(cursor, SCAN_PAGE):
        for r in index.records(ids):
            dirs[PurePosixPath(r.path).parent.as_posix()] += 1
            tags.update(r.tags)
        cursor = ids[-1]
    return dirs, tags


def folder_tree(dir_counts: dict[str, int], root: str | None) -> Folders:
    """:class:`Folders` from absolute directories and their direct counts (sorted by folder);
    every ancestor of a directory under ``root`` is listed, even one holding no image itself."""
    base = PurePosixPath(root or "/")
    direct: Counter[str] = Counter()
    under: Counter[str] = Counter()
    elsewhere = 0
    for name, n in dir_counts.items():
        path = PurePosixPath(name)
        if not path.is_relative_to(base):
            elsewhere += n
            continue
        rel = path.relative_to(base)
        direct[rel.as_posix()] += n
        for parent in [rel, *rel.parents]:
            under[parent.as_posix()] += n
    return Folders([FolderCount(f, direct[f], under[f]) for f in sorted(under)], elsewhere)


def folder_counts(index: IndexStore) -> Folders:
    """The folders of ``index`` under its images root (module docstring)."""
    root = index.images_root if isinstance(index, KnowsSources) else None
    dirs = index.dir_counts() if isinstance(index, CountsFolders) else _scan(index)[0]
    return folder_tree(dirs, root)


def tag_counts(index: IndexStore) -> dict[str, int]:
    """Every tag in use in ``index`` and how many images hold it, sorted by tag."""
    counts = index.tag_counts() if isinstance(index, KeepsTags) else _scan(index)[1]
    return dict(sorted(counts.items()))
