"""What the store holds of an image, before and after it is added."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageRecord", "NewImage"]


@dataclass(frozen=True)
class NewImage:
    """An image about to be added: where it came from and what it is."""

    path: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageRecord:
    """A stored image; ``added_at`` is seconds since the epoch (UTC)."""

    id: int
    path: str
    sha256: str
    width: int
    height: int
    added_at: float
