"""What every store holds of an image: before it is added, once stored, as a search hit, as the
outcome of an idempotent add. Engine-neutral (both engines build these)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from retrieval.errors import ConfigError
from retrieval.index._tags import clean_tags

__all__ = ["DEFAULT_KEY_TTL_S", "AddOutcome", "Added", "Hit", "ImageRecord", "NewImage",
           "check_new_images", "dir_folder", "folder_of"]

#: How long a request key's answer is kept (every store that keeps request keys).
DEFAULT_KEY_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class NewImage:
    """An image about to be added: where it came from and what it is."""

    path: str
    sha256: str
    width: int
    height: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageRecord:
    """A stored image; ``added_at`` is seconds since the epoch (UTC); ``tags`` sorted, unique."""

    id: int
    path: str
    sha256: str
    width: int
    height: int
    added_at: float
    tags: tuple[str, ...] = ()

    def folder_in(self, roots: Sequence[str]) -> str | None:
        """:func:`folder_of` this record's path."""
        return folder_of(self.path, roots)


def folder_of(path: str, roots: Sequence[str]) -> str | None:
    """The directory of ``path`` relative to the innermost of ``roots`` (absolute folders: the
    indexed root, the uploads folder) holding it, POSIX, ``""`` for that root itself; None when
    none holds it. What a ``folder`` filter names: a record matches ``folder=F`` when this is
    ``F`` or under it."""
    return dir_folder(PurePosixPath(path).parent.as_posix(), roots)


def dir_folder(directory: str, roots: Sequence[str]) -> str | None:
    """:func:`folder_of` a file in ``directory`` (absolute)."""
    path = PurePosixPath(directory)
    held = [PurePosixPath(r) for r in roots if path.is_relative_to(r)]
    if not held:
        return None
    rel = path.relative_to(max(held, key=lambda r: len(r.parts)))
    return "" if not rel.parts else rel.as_posix()


@dataclass(frozen=True)
class Hit:
    """One search result: the image id, its score (inner product: higher is closer), its record."""

    id: int
    score: float
    record: ImageRecord


@dataclass(frozen=True)
class Added(ImageRecord):
    """One item of an idempotent add: its record and whether that record existed before."""

    duplicate: bool = False


@dataclass(frozen=True)
class AddOutcome:
    """What an idempotent add did, one :class:`Added` per item in order.

    ``replayed``: the answer saved by an earlier call with the same request key (nothing was
    changed by this one).
    """

    added: list[Added]
    replayed: bool = False

    @property
    def new_ids(self) -> list[int]:
        return [] if self.replayed else [a.id for a in self.added if not a.duplicate]


def check_new_images(items: Sequence[NewImage]) -> None:
    """:class:`ConfigError` unless every item is a :class:`NewImage` with a path, a sha256 and a
    positive size (what every store checks before it adds anything)."""
    for item in items:
        if not isinstance(item, NewImage):
            raise ConfigError(f"expected NewImage records, got {type(item).__name__}")
        if not item.path or not item.sha256:
            raise ConfigError(f"an image needs a path and a sha256, got {item}")
        if item.width < 1 or item.height < 1:
            raise ConfigError(f"{item.path}: image size must be positive, got "
                              f"{item.width}x{item.height}")
        if item.tags != clean_tags(item.tags):
            raise ConfigError(f"{item.path}: tags must be given through clean_tags "
                              f"(sorted, unique), got {item.tags!r}")
