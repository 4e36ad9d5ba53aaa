"""The blocking work behind the API, run in the inference pool: search, add, remove.

Adds embed outside any lock; only :meth:`ImageIndex.add` takes the index's writer lock, so
searches keep running while images are being embedded. The store is committed (SQLite,
``synchronous=FULL``) before any of these return, so an acknowledged change survives a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrieval import Collection, NotFoundError, ingest, load_image, sha256_hex
from retrieval.index import Hit, ImageRecord, search_hits, similar_hits
from service.storage import image_suffix, store_file

__all__ = ["Upload", "add_uploads", "remove_image", "search_upload", "similar_to"]

ADD_BATCH = 8


@dataclass(frozen=True)
class Upload:
    """An uploaded file: the client's name (a label for errors only) and its bytes."""

    name: str
    data: bytes


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


def add_uploads(collection: Collection, uploads: list[Upload], folder: Path,
                max_pixels: int) -> list[ImageRecord]:
    """Check every upload decodes, store the files, then embed and add them (all or nothing).

    Returns one record per upload, in order; identical files in one request are added once.
    """
    shas = [sha256_hex(upload.data) for upload in uploads]
    unique: dict[str, Upload] = {}
    for sha, upload in zip(shas, uploads, strict=True):
        load_image(upload.data, name=upload.name, max_pixels=max_pixels)
        unique.setdefault(sha, upload)
    paths = {sha: str(store_file(folder, u.data, image_suffix(u.data)))
             for sha, u in unique.items()}
    report = ingest(collection, [(paths[sha], u.data) for sha, u in unique.items()],
                    batch_size=ADD_BATCH, workers=1, max_pixels=max_pixels)
    if report.failures:  # cannot happen: each upload decoded above
        raise report.failures[0].error
    ids = dict(zip(report.added_keys, report.added, strict=True))
    records = {r.id: r for r in collection.index.records(list(ids.values()))}
    return [records[ids[paths[sha]]] for sha in shas]


def remove_image(collection: Collection, image_id: int) -> None:
    """Remove one image; :class:`NotFoundError` if there is none."""
    if not collection.index.remove([image_id]):
        raise NotFoundError(f"no image with id {image_id}")
