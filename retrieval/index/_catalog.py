"""What a collection holds, by folder and by tag, with counts (``GET /folders``, ``GET /tags``).

Folders are directories relative to the indexed root (the root itself is ``"."``) and to any
further roots given (the service's uploads folder: an upload's ``folder`` is a sub-folder there),
merged by name, each with the images directly in it (``images``) and those anywhere under it
(``under``: what a ``folder`` filter matches). Images stored outside every root are counted in
:attr:`Folders.elsewhere`. A store that :class:`CountsFolders` / :class:`KeepsTags` answers from
its own indexes; any other is scanned record by record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from retrieval.index._filters import SCAN_PAGE, source_roots
from retrieval.index._protocol import CountsFolders, IndexStore, KeepsTags
from retrieval.index._records import dir_folder

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


def folder_tree(dir_counts: dict[str, int], root: str | None,
                also: Sequence[str] = ()) -> Folders:
    """:class:`Folders` from absolute directories and their direct counts (sorted by folder),
    named relative to ``root`` (None: ``/``) and the roots ``also``
    (:func:`~retrieval.index.folder_of`); every ancestor of a directory under a root is listed,
    even one holding no image itself."""
    roots = (root or "/", *also)
    direct: Counter[str] = Counter()
    under: Counter[str] = Counter()
    elsewhere = 0
    for name, n in dir_counts.items():
        folder = dir_folder(name, roots)
        if folder is None:
            elsewhere += n
            continue
        rel = PurePosixPath(folder)
        direct[rel.as_posix()] += n
        for parent in [rel, *rel.parents]:
            under[parent.as_posix()] += n
    return Folders([FolderCount(f, direct[f], under[f]) for f in sorted(under)], elsewhere)


def folder_counts(index: IndexStore, also: Sequence[str] = ()) -> Folders:
    """The folders of ``index`` under its images root and the roots ``also`` (module
    docstring)."""
    root, *rest = source_roots(index, also)
    dirs = index.dir_counts() if isinstance(index, CountsFolders) else _scan(index)[0]
    return folder_tree(dirs, root, rest)


def tag_counts(index: IndexStore) -> dict[str, int]:
    """Every tag in use in ``index`` and how many images hold it, sorted by tag."""
    counts = index.tag_counts() if isinstance(index, KeepsTags) else _scan(index)[1]
    return dict(sorted(counts.items()))
