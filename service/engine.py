"""The blocking work behind the API, run in the inference pool: search, add, remove.

Each upload is decoded once (pixels and format together); adds embed outside any lock and commit
in *one* transaction per request (:meth:`ImageIndex.add_unique`), so a request's files become
searchable and durable together or not at all, and searches keep running while images are being
embedded. Content already stored is not added again (its record comes back flagged
``duplicate``), and a request key replays the first answer. The store is committed (SQLite,
``synchronous=FULL``) before any of these return, so an acknowledged change survives a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval import (
    Collection,
    ConfigError,
    NotFoundError,
    load_image,
    load_image_with_suffix,
    sha256_hex,
)
from retrieval.features import layout_descriptors
from retrieval.index import (
    DEFAULT_KEY_TTL_S,
    AddOutcome,
    DedupesContent,
    Hit,
    KeepsRequestKeys,
    NewImage,
    search_hits,
    similar_hits,
)
from service.storage import store_file

__all__ = ["Upload", "add_uploads", "remove_image", "search_upload", "similar_to"]


@dataclass(frozen=True)
class Upload:
    """An uploaded file: the client's name (a label for errors only) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class _Embedded:
    sha256: str
    suffix: str
    width: int
    height: int
    vector: np.ndarray
    layout: np.ndarray


def search_upload(collection: Collection, upload: Upload, k: int, max_pixels: int,
                  qe_k: int | None = None) -> list[Hit]:
    """The ``k`` nearest stored images of an uploaded query image, best first (αQE with
    ``qe_k`` neighbours; None: the index's default)."""
    image = load_image(upload.data, name=upload.name, max_pixels=max_pixels)
    xq = collection.embedder.embed([image])
    return search_hits(collection.index, xq, k, qe_k=qe_k)[0]


def similar_to(collection: Collection, image_id: int, k: int,
               qe_k: int | None = None) -> list[Hit]:
    """The ``k`` stored images most like stored image ``image_id`` (itself left out)."""
    return similar_hits(collection.index, image_id, k, qe_k=qe_k)


def _embed(collection: Collection, upload: Upload, sha: str, max_pixels: int) -> _Embedded:
    image, suffix = load_image_with_suffix(upload.data, name=upload.name, max_pixels=max_pixels)
    width, height = image.size
    per_scale = collection.embedder.feature_maps([image])[0]  # first scale first
    vector = collection.embedder.describe_images([per_scale])[0]
    return _Embedded(sha, suffix, width, height, vector, layout_descriptors(per_scale[0][None])[0])


def add_uploads(collection: Collection, uploads: list[Upload], folder: Path, max_pixels: int, *,
                request_key: str | None = None,
                key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome:
    """Decode and embed every upload (one bad file adds none), store the files, commit once.

    Returns one entry per upload, in order. A file whose content is already stored is not stored
    again: it points at the existing record. A ``request_key`` already answered replays that
    answer before anything is decoded.
    """
    index = collection.index
    if not isinstance(index, DedupesContent):
        raise ConfigError("adding uploads needs a store that keeps one record per content")
    keyed = index if isinstance(index, KeepsRequestKeys) else None
    shas = [sha256_hex(upload.data) for upload in uploads]
    fingerprint = sha256_hex("\n".join(shas).encode())
    if request_key is not None:
        if keyed is None:
            raise ConfigError("Idempotency-Key needs the FAISS+SQLite store (it commits the key "
                              "with the add); a Milvus store cannot")
        saved = keyed.saved_outcome(request_key, fingerprint, key_ttl_s)
        if saved is not None:
            return saved
    done = [_embed(collection, u, sha, max_pixels) for u, sha in zip(uploads, shas, strict=True)]
    paths: dict[str, str] = {}
    for item, upload in zip(done, uploads, strict=True):
        if item.sha256 not in paths:
            known = index.find_sha256(item.sha256)
            paths[item.sha256] = (known[0].path if known else
                                  str(store_file(folder, upload.data, item.sha256, item.suffix)))
    news = [NewImage(paths[d.sha256], d.sha256, d.width, d.height) for d in done]
    xb, layouts = np.stack([d.vector for d in done]), np.stack([d.layout for d in done])
    if keyed is None:
        return index.add_unique(news, xb, layouts=layouts)
    return keyed.add_unique(news, xb, layouts=layouts, request_key=request_key,
                            fingerprint=fingerprint, key_ttl_s=key_ttl_s)


def remove_image(collection: Collection, image_id: int) -> None:
    """Remove one image; :class:`NotFoundError` if there is none."""
    if not collection.index.remove([image_id]):
        raise NotFoundError(f"no image with id {image_id}")
