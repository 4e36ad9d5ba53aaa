"""The one exception hierarchy of cbir.

Every failure the library reports on purpose is a :class:`RetrievalError`; the edges translate
them once (HTTP status codes in ``service``, exit codes in ``indexer``)::

    RetrievalError
    ├── ImageDecodeError        a file or upload is not an image we accept (names source and reason)
    │   ├── UnsupportedImageError   not an image of an allowed format (or a variant PIL cannot read)
    │   └── ImageTooLargeError      more pixels than the limit (judged from the header)
    ├── ConfigError             an option is invalid
    │   └── UnknownNameError    a registry lookup failed (lists the valid choices)
    ├── WeightsError            network weights are missing, unreadable or do not match
    ├── ArtifactError           an index directory or fitted artifact is missing, corrupt, wrong
    │   └── ManifestMismatchError   a query would not be embedded like the database
    ├── NotFoundError           an image id is not in the index
    ├── StoreTimeoutError       a vector store did not finish its work in the time allowed
    ├── StorageFullError        a write found its disk (or quota) full; nothing was half-written
    ├── StoreError              a vector store (Milvus) refused or failed an operation
    │   └── StoreUnavailableError   it cannot be reached (down, refused, or not ready)
    ├── ClusterError            a compute cluster (Ray) failed the work it was handed
    └── DatasetError            a benchmark's files are missing or malformed
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ArtifactError",
    "ClusterError",
    "ConfigError",
    "DatasetError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "ManifestMismatchError",
    "NotFoundError",
    "RetrievalError",
    "StorageFullError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "UnknownNameError",
    "UnsupportedImageError",
    "WeightsError",
]


class RetrievalError(Exception):
    """Base class of every error cbir raises deliberately."""


class ImageDecodeError(RetrievalError):
    """A file or upload could not be decoded into an accepted RGB image."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class UnsupportedImageError(ImageDecodeError):
    """The bytes are not an image of an allowed format, or of a variant of one PIL cannot read."""


class ImageTooLargeError(ImageDecodeError):
    """The image has more pixels than allowed (refused before decoding)."""


class ConfigError(RetrievalError):
    """An option or combination of options is invalid."""


class UnknownNameError(ConfigError):
    """A name was looked up in a registry that does not hold it."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices)}")


class WeightsError(RetrievalError):
    """Network weights are missing, unreadable or not the ones expected."""


class ArtifactError(RetrievalError):
    """An index directory or a fitted artifact is missing, corrupt or incompatible."""


class ManifestMismatchError(ArtifactError):
    """The embedding settings asked for differ from those an index was built with."""


class NotFoundError(RetrievalError):
    """An image id is not in the index."""


class StoreTimeoutError(RetrievalError):
    """A vector store (Milvus) did not finish indexing or loading in the time allowed."""


class StorageFullError(RetrievalError):
    """A write failed because the disk or quota holding it is full (ENOSPC, EDQUOT, SQLITE_FULL).

    The failed change was rolled back (no half-written record or file is left); the same write
    succeeds once space has been freed, without reopening anything.
    """


class StoreError(RetrievalError):
    """A vector store (Milvus) refused or failed an operation (the message names it)."""


class StoreUnavailableError(StoreError):
    """A vector store cannot be reached: the server is down, refuses connections or is not ready."""


class ClusterError(RetrievalError):
    """A compute cluster (Ray) failed the work it was handed: a worker died, a node went away.

    What was stored before the failure is kept; the same build continues with ``--resume``.
    """


class DatasetError(RetrievalError):
    """A benchmark dataset's files are missing or malformed."""
