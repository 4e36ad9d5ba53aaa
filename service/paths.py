"""How record paths are shown to clients: relative, so answers do not reveal the server's layout.

A path under the uploads folder is shown relative to it (``<sha256>.jpg``), one under the folder
the index was built from relative to that (``holidays/0001.jpg``), any other by its file name
alone; ``absolute`` (``CBIR_ABSOLUTE_PATHS``) shows them as stored. A record's ``folder`` is
its directory relative to the innermost of those two folders holding it (what ``?folder=``
matches: :func:`retrieval.index.folder_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from retrieval.index import folder_of

__all__ = ["PathView"]


@dataclass(frozen=True)
class PathView:
    uploads_dir: str
    images_root: str | None = None
    absolute: bool = False

    def show(self, stored: str) -> str:
        if self.absolute:
            return stored
        path = PurePath(stored)
        for root in (self.uploads_dir, self.images_root):
            if root is not None and path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return path.name

    @property
    def roots(self) -> tuple[str, ...]:
        """The roots folders are named in (:func:`retrieval.index.source_roots`'s order)."""
        return (self.images_root or "/", self.uploads_dir)

    def folder(self, stored: str) -> str | None:
        """The folder of the record stored at ``stored`` (None: under neither root)."""
        return folder_of(stored, self.roots)
