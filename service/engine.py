"""The blocking work behind the API, run in the inference pool: search, add, remove.

An add goes through :func:`retrieval.ingest` like every other add: each upload is decoded once
(pixels and format together), the request is embedded in batches outside any lock and committed
in *one* transaction (:meth:`ImageIndex.add_unique`), so a request's files become
searchable and durable together or not at all, and searches keep running while images are being
embedded. Content already stored is not added again (its record comes back flagged
``duplicate``), and a request key replays the first answer. The store is committed (SQLite,
``synchronous=FULL``) before any of these return, so an acknowledged change survives a crash;
a file stored for an add whose commit failed (a full disk) is removed again
(:class:`~service.storage.UploadFiles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy.typing as npt
from PIL import Image

from retrieval import (
    Box,
    Collection,
    ConfigError,
    ImageDecodeError,
    NotFoundError,
    UniqueAdd,
    crop_box,
    ingest,
    load_image,
    sha256_hex,
)
from retrieval.features import Decoded
from retrieval.index import (
    DEFAULT_KEY_TTL_S,
    AddOutcome,
    DedupesContent,
    Hit,
    KeepsRequestKeys,
    RecordFilter,
    search_hits,
    similar_hits,
)
from service.storage import UploadFiles

__all__ = ["Upload", "Window", "add_uploads", "remove_image", "search_batch", "search_upload",
           "similar_to"]


@dataclass(frozen=True)
class Upload:
    """An uploaded file: the client's name (a label for errors only) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Window:
    """Which hits a search answers: ``offset … offset + k`` of the ranking, none below
    ``min_score``, among the images ``where`` matches, ranked with ``diffusion`` (its text:
    ``on``, ``off``, ``name=value,...``; None: the index's default)."""

    k: int
    offset: int = 0
    min_score: float | None = None
    where: RecordFilter | None = None
    diffusion: str | None = None


def _hits(collection: Collection, xq: npt.ArrayLike, window: Window, qe_k: int | None,
          exclude: int | None = None) -> list[list[Hit]]:
    return search_hits(collection.index, xq, window.k, qe_k=qe_k, exclude=exclude,
                       offset=window.offset, min_score=window.min_score, where=window.where,
                       diffusion=window.diffusion)


def search_upload(collection: Collection, upload: Upload, window: Window, max_pixels: int,
                  qe_k: int | None = None, box: Box | None = None) -> list[Hit]:
    """The stored images nearest to an uploaded query image (its region ``box`` when given),
    best first (αQE with ``qe_k`` neighbours; None: the index's default)."""
    image = load_image(upload.data, name=upload.name, max_pixels=max_pixels)
    if box is not None:
        image = crop_box(image, box)
    return _hits(collection, collection.embedder.embed_images([image]), window, qe_k)[0]


def search_batch(collection: Collection, uploads: list[Upload], window: Window, max_pixels: int,
                 qe_k: int | None = None) -> list[list[Hit] | ImageDecodeError]:
    """:func:`search_upload` for each upload, in order: the good ones embedded in one call and
    searched in one FAISS call; an upload that does not decode answers its own error."""
    decoded: list[Image.Image | ImageDecodeError] = []
    for upload in uploads:
        try:
            decoded.append(load_image(upload.data, name=upload.name, max_pixels=max_pixels))
        except ImageDecodeError as exc:
            decoded.append(exc)
    images = [d for d in decoded if isinstance(d, Image.Image)]
    rows = iter(_hits(collection, collection.embedder.embed_images(images), window, qe_k)
                if images else [])
    return [next(rows) if isinstance(d, Image.Image) else d for d in decoded]


def similar_to(collection: Collection, image_id: int, window: Window,
               qe_k: int | None = None, box: Box | None = None) -> list[Hit]:
    """The stored images most like stored image ``image_id`` (itself left out): from its stored
    vector, or with ``box`` from its region, cut from its file and embedded."""
    if box is None:
        return similar_hits(collection.index, image_id, window.k, qe_k=qe_k,
                            offset=window.offset, min_score=window.min_score, where=window.where,
                       diffusion=window.diffusion)
    path = Path(collection.index.get(image_id).path)
    if not path.is_file():
        raise NotFoundError(f"the file of image {image_id} is gone")
    image = crop_box(load_image(path), box)
    return _hits(collection, collection.embedder.embed_images([image]), window, qe_k,
                 exclude=image_id)[0]


def add_uploads(collection: Collection, uploads: list[Upload], folder: Path, max_pixels: int, *,
                request_key: str | None = None,
                key_ttl_s: float = DEFAULT_KEY_TTL_S) -> AddOutcome:
    """Decode and embed every upload (one bad file adds none), store the files, commit once.

    Returns one entry per upload, in order. A file whose content is already stored is not stored
    again: it points at the existing record. A ``request_key`` already answered replays that
    answer before anything is decoded.
    """
    shas = [sha256_hex(upload.data) for upload in uploads]
    fingerprint = sha256_hex("\n".join(shas).encode())
    index = collection.index
    if not isinstance(index, DedupesContent):
        raise ConfigError("adding uploads needs a store that keeps one record per content")
    if request_key is not None:
        if not isinstance(index, KeepsRequestKeys):
            raise ConfigError("Idempotency-Key needs the FAISS+SQLite store (it commits the key "
                              "with the add); a Milvus store cannot")
        saved = index.saved_outcome(request_key, fingerprint, key_ttl_s)
        if saved is not None:
            return saved
    files = UploadFiles(folder)
    unique = UniqueAdd(_Placer(index, uploads, files), request_key=request_key,
                       fingerprint=fingerprint, key_ttl_s=key_ttl_s)
    try:
        report = ingest(collection, [(u.name, u.data) for u in uploads], max_pixels=max_pixels,
                        unique=unique)
    finally:  # a file stored for a commit that failed (a full disk) is removed again
        files.release(lambda path, sha: any(r.path == str(path) for r in index.find_sha256(sha)))
    return report.outcome or AddOutcome([])  # none only for no uploads at all


class _Placer:
    """Where each decoded upload's record points: the stored copy of its content (stored
    now, once per content) or the existing record's path."""

    def __init__(self, index: DedupesContent, uploads: list[Upload], files: UploadFiles) -> None:
        self.index, self.uploads, self.files = index, uploads, files
        self.paths: dict[str, str] = {}

    def __call__(self, item: Decoded[str]) -> str:
        if item.sha256 not in self.paths:
            known = self.index.find_sha256(item.sha256)
            data = self.uploads[item.position].data
            self.paths[item.sha256] = (known[0].path if known else
                                       str(self.files.store(data, item.sha256, item.suffix)))
        return self.paths[item.sha256]


def remove_image(collection: Collection, image_id: int) -> None:
    """Remove one image; :class:`NotFoundError` if there is none."""
    if not collection.index.remove([image_id]):
        raise NotFoundError(f"no image with id {image_id}")
