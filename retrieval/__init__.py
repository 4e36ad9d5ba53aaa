"""cbir's library: images -> vectors -> a durable index, and the measuring of it.

The front door. Edges (the CLI, the service, the benchmarks) import from here or from a
subpackage's ``__init__`` (:mod:`retrieval.features`, :mod:`retrieval.pooling`,
:mod:`retrieval.index`, :mod:`retrieval.evaluation`), never from a private module.

Names are loaded lazily (PEP 562), so ``import retrieval`` or ``from retrieval import ConfigError``
costs nothing: torch and faiss are imported by the first name that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrieval._atomic import fsync_directory, write_atomic
    from retrieval._collection import (
        Collection,
        config_from_manifest,
        create_collection,
        fit_embedder,
        manifest_for,
        open_collection,
    )
    from retrieval._engines import calibration_sample
    from retrieval._ingest import IngestReport, UniqueAdd, ingest
    from retrieval.errors import (
        ArtifactError,
        ConfigError,
        DatasetError,
        ImageDecodeError,
        ImageTooLargeError,
        ManifestMismatchError,
        NotFoundError,
        RetrievalError,
        UnknownNameError,
        UnsupportedImageError,
        WeightsError,
    )
    from retrieval.features import Embedder, EmbedderConfig
    from retrieval.images import (
        ALLOWED_FORMATS,
        MEDIA_TYPES,
        format_suffix,
        list_images,
        load_image,
        load_image_with_suffix,
        sha256_hex,
    )
    from retrieval.index import Hit, ImageIndex, ImageRecord, Manifest

_EXPORTS = {
    "retrieval._atomic": ("fsync_directory", "write_atomic"),
    "retrieval._engines": ("calibration_sample",),
    "retrieval._collection": ("Collection", "config_from_manifest", "create_collection",
                             "fit_embedder", "manifest_for", "open_collection"),
    "retrieval.errors": ("ArtifactError", "ConfigError", "DatasetError", "ImageDecodeError",
                         "ImageTooLargeError", "ManifestMismatchError", "NotFoundError",
                         "RetrievalError", "UnknownNameError", "UnsupportedImageError",
                         "WeightsError"),
    "retrieval.features": ("Embedder", "EmbedderConfig"),
    "retrieval.images": ("ALLOWED_FORMATS", "MEDIA_TYPES", "format_suffix", "list_images",
                         "load_image", "load_image_with_suffix", "sha256_hex"),
    "retrieval.index": ("Hit", "ImageIndex", "ImageRecord", "Manifest"),
    "retrieval._ingest": ("IngestReport", "UniqueAdd", "ingest"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ALLOWED_FORMATS",
    "MEDIA_TYPES",
    "ArtifactError",
    "Collection",
    "ConfigError",
    "DatasetError",
    "Embedder",
    "EmbedderConfig",
    "Hit",
    "ImageDecodeError",
    "ImageIndex",
    "ImageRecord",
    "ImageTooLargeError",
    "IngestReport",
    "Manifest",
    "ManifestMismatchError",
    "NotFoundError",
    "RetrievalError",
    "UniqueAdd",
    "UnknownNameError",
    "UnsupportedImageError",
    "WeightsError",
    "calibration_sample",
    "config_from_manifest",
    "create_collection",
    "fit_embedder",
    "format_suffix",
    "fsync_directory",
    "ingest",
    "list_images",
    "load_image",
    "load_image_with_suffix",
    "manifest_for",
    "open_collection",
    "sha256_hex",
    "write_atomic",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
