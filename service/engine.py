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

from dataclasses import dataclass, replace
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
from retrieval.explain import Explanation, explain_image
from retrieval.features import Decoded
from retrieval.index import (
    DEFAULT_KEY_TTL_S,
    AddOutcome,
    DedupesContent,
    Hit,
    KeepsRequestKeys,
    KeepsTags,
    RecordFilter,
    TagEdit,
    clean_folder,
    search_hits,
    similar_hits,
)
from service.storage import UploadFiles

__all__ = ["Upload", "Window", "add_uploads", "explain_pair", "remove_image", "search_batch",
           "search_upload", "similar_to"]


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


def _stored_image(collection: Collection, image_id: int) -> Image.Image:
    path = Path(collection.index.get(image_id).path)
    if not path.is_file():
        raise NotFoundError(f"the file of image {image_id} is gone")
    return load_image(path)


def explain_pair(collection: Collection, image_id: int, query: int | Upload, side: str,
                 max_pixels: int) -> tuple[Explanation, Image.Image]:
    """Why stored image ``image_id`` matched ``query`` (a stored id or an uploaded image): the
    cells of the explained ``side`` (``stored``: image ``image_id``; ``query``: the query
    image), against the other side's descriptor (a stored image's stored vector; an upload's
    embedding), and the explained image."""
    index, embedder = collection.index, collection.embedder
    if side == "stored":
        hit = _stored_image(collection, image_id)  # 404 before anything is embedded
        if isinstance(query, Upload):
            image = load_image(query.data, name=query.name, max_pixels=max_pixels)
            partner = embedder.embed_images([image])[0]
        else:
            partner = index.stored_vectors([query])[0]
        return explain_image(embedder, hit, partner), hit
    partner = index.stored_vectors([image_id])[0]
    image = (load_image(query.data, name=query.name, max_pixels=max_pixels)
             if isinstance(query, Upload) else _stored_image(collection, query))
    return explain_image(embedder, image, partner), image


def add_uploads(collection: Collection, uploads: list[Upload], folder: Path, max_pixels: int, *,
                request_key: str | None = None, key_ttl_s: float = DEFAULT_KEY_TTL_S,
                tags: tuple[str, ...] = (), sub_folder: str = "") -> AddOutcome:
    """Decode and embed every upload (one bad file adds none), store the files under ``folder``
    (the uploads folder; its ``sub_folder``, a :func:`clean_folder` name, when given: the
    records' folder), commit once.

    Returns one entry per upload, in order. A file whose content is already stored is not stored
    again: it points at the existing record (which keeps its folder), which gets ``tags`` added
    (after the commit). A ``request_key`` already answered replays that answer before anything
    is decoded.
    """
    if sub_folder != clean_folder(sub_folder):
        raise ConfigError(f"sub_folder {sub_folder!r} must be given through clean_folder")
    shas = [sha256_hex(upload.data) for upload in uploads]
    parts = [*shas, ",".join(tags), *([f"folder={sub_folder}"] if sub_folder else [])]
    fingerprint = sha256_hex("\n".join(parts).encode())
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
    files = UploadFiles(folder / sub_folder if sub_folder else folder)
    unique = UniqueAdd(_Placer(index, uploads, files), request_key=request_key,
                       fingerprint=fingerprint, key_ttl_s=key_ttl_s)
    try:
        report = ingest(collection, [(u.name, u.data) for u in uploads], max_pixels=max_pixels,
                        unique=unique, tags=tags)
    finally:  # a file stored for a commit that failed (a full disk) is removed again
        files.release(lambda path, sha: any(r.path == str(path) for r in index.find_sha256(sha)))
    outcome = report.outcome or AddOutcome([])  # none only for no uploads at all
    return _tag_duplicates(index, outcome, tags)


def _tag_duplicates(index: object, outcome: AddOutcome, tags: tuple[str, ...]) -> AddOutcome:
    """``outcome`` with ``tags`` added to the records that were stored before."""
    old = [a.id for a in outcome.added if a.duplicate]
    if not tags or not old or outcome.replayed or not isinstance(index, KeepsTags):
        return outcome
    records = {r.id: r for r in index.retag(old, TagEdit.of(add=tags))}
    return AddOutcome([replace(a, tags=records[a.id].tags) if a.id in records else a
                       for a in outcome.added], outcome.replayed)


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
