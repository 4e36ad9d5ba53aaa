"""Search routes: ``POST /search`` (by an uploaded image), ``GET /images/{id}/similar`` (by id).

Decoding, the forward pass and FAISS run in the bounded inference pool, off the event loop.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from retrieval.index import Hit
from service.deps import (
    CollectionDep,
    ImageId,
    Multipart,
    QeK,
    QueryK,
    SearchK,
    StateDep,
    read_upload,
)
from service.engine import search_upload, similar_to
from service.paths import PathView
from service.schemas import SearchHit, SearchResponse, error_responses, file_url

__all__ = ["router"]

router = APIRouter()


@router.post("/search", response_model=SearchResponse, dependencies=[Multipart],
             responses=error_responses(400, 413, 415, 422, 503))
async def search(
    state: StateDep,
    collection: CollectionDep,
    k: SearchK,
    image: Annotated[UploadFile, File(description="the query image (JPEG, PNG, WebP, GIF, "
                                      "BMP or TIFF)")],
    qe: QeK = None,
) -> SearchResponse:
    """The ``k`` stored images most like the uploaded one, best first."""
    start = time.perf_counter()
    upload = await read_upload(image, "image")
    settings = state.settings
    hits = await state.pool.run(
        partial(search_upload, collection, upload, k, settings.max_image_pixels, qe))
    return _search_response(hits, start, state.paths)


def _search_response(hits: list[Hit], start: float, paths: PathView) -> SearchResponse:
    results = [SearchHit(id=h.id, score=h.score, path=paths.show(h.record.path),
                         url=file_url(h.id)) for h in hits]
    return SearchResponse(results=results, took_ms=round((time.perf_counter() - start) * 1e3, 3))


@router.get("/images/{image_id}/similar", response_model=SearchResponse,
            responses=error_responses(404, 422, 503))
async def similar(state: StateDep, collection: CollectionDep, image_id: ImageId,
                  k: QueryK, qe: QeK = None) -> SearchResponse:
    """The ``k`` stored images most like stored image ``image_id`` (itself left out), from its
    stored vector: nothing is decoded or embedded."""
    start = time.perf_counter()
    hits = await state.pool.run(partial(similar_to, collection, image_id, k, qe))
    return _search_response(hits, start, state.paths)
