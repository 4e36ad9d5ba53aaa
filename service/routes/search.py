"""Search routes: ``POST /search`` (by an uploaded image or a region of it), ``POST
/search/batch`` (many uploaded images), ``GET /images/{id}/similar`` (by id, or a region of it).

Decoding, the forward pass and FAISS run in the bounded inference pool, off the event loop.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.exceptions import RequestValidationError

from retrieval import ImageDecodeError
from retrieval.index import Hit
from service.deps import (
    CollectionDep,
    ImageId,
    Multipart,
    QeK,
    QueryBox,
    QueryWindow,
    SearchWindow,
    StateDep,
    UploadBox,
    read_upload,
)
from service.engine import search_batch, search_upload, similar_to
from service.errors import decode_status
from service.paths import PathView
from service.schemas import (
    BatchEntry,
    BatchResponse,
    SearchHit,
    SearchResponse,
    error_responses,
    file_url,
)

__all__ = ["MAX_BATCH", "router"]

router = APIRouter()

#: images in one ``POST /search/batch`` at most (422 beyond).
MAX_BATCH = 64

_FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"


@router.post("/search", response_model=SearchResponse, dependencies=[Multipart],
             responses=error_responses(400, 413, 415, 422, 503))
async def search(
    state: StateDep,
    collection: CollectionDep,
    window: SearchWindow,
    box: UploadBox,
    image: Annotated[UploadFile, File(description=f"the query image ({_FORMATS})")],
    qe: QeK = None,
) -> SearchResponse:
    """The ``k`` stored images most like the uploaded one (or its region ``bbox``), best first."""
    start = time.perf_counter()
    upload = await read_upload(image, "image")
    settings = state.settings
    hits = await state.pool.run(
        partial(search_upload, collection, upload, window, settings.max_image_pixels, qe, box))
    return SearchResponse(results=_hits_out(hits, state.paths), took_ms=_ms(start))


@router.post("/search/batch", response_model=BatchResponse, dependencies=[Multipart],
             responses=error_responses(400, 413, 415, 422, 503))
async def search_many(
    state: StateDep,
    collection: CollectionDep,
    window: SearchWindow,
    images: Annotated[list[UploadFile], File(description=f"the query images ({_FORMATS}), "
                                             f"at most {MAX_BATCH}")],
    qe: QeK = None,
) -> BatchResponse:
    """One result list per uploaded image (field ``images``, repeated), in upload order, with
    the same parameters for all: embedded together in one pass of the pool. An image that does
    not decode fails its own entry only (``status``, ``error``, ``detail``)."""
    start = time.perf_counter()
    if len(images) > MAX_BATCH:
        raise RequestValidationError([{
            "type": "too_long", "loc": ("body", "images"), "ctx": {"max_length": MAX_BATCH},
            "msg": f"at most {MAX_BATCH} images per batch"}])
    uploads = [await read_upload(f, f"image{i}") for i, f in enumerate(images)]
    answers = await state.pool.run(partial(search_batch, collection, uploads, window,
                                           state.settings.max_image_pixels, qe))
    return BatchResponse(queries=[_entry(u.name, a, state.paths)
                                  for u, a in zip(uploads, answers, strict=True)],
                         took_ms=_ms(start))


def _entry(name: str, answer: list[Hit] | ImageDecodeError, paths: PathView) -> BatchEntry:
    if isinstance(answer, ImageDecodeError):
        status, code = decode_status(answer)
        return BatchEntry(name=name, status=status, error=code, detail=str(answer))
    return BatchEntry(name=name, results=_hits_out(answer, paths))


def _hits_out(hits: list[Hit], paths: PathView) -> list[SearchHit]:
    return [SearchHit(id=h.id, score=h.score, path=paths.show(h.record.path), url=file_url(h.id),
                      tags=list(h.record.tags), folder=paths.folder(h.record.path))
            for h in hits]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1e3, 3)


@router.get("/images/{image_id}/similar", response_model=SearchResponse,
            responses=error_responses(404, 422, 503))
async def similar(state: StateDep, collection: CollectionDep, image_id: ImageId,
                  window: QueryWindow, box: QueryBox, qe: QeK = None) -> SearchResponse:
    """The ``k`` stored images most like stored image ``image_id`` (itself left out), from its
    stored vector (nothing decoded or embedded), or with ``bbox`` from that region of its file,
    cut and embedded."""
    start = time.perf_counter()
    hits = await state.pool.run(partial(similar_to, collection, image_id, window, qe, box))
    return SearchResponse(results=_hits_out(hits, state.paths), took_ms=_ms(start))
