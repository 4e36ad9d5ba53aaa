"""Why an image matched: ``GET /images/{id}/explain?query_id=J`` (two stored images) and
``POST /explain`` (an uploaded query image and a hit's ``id``).

Each answers a PNG of the explained image with the cells that contribute most to the similarity
highlighted, or with ``?format=json`` the grid of every cell's part of the similarity (they sum
to it; :mod:`retrieval.explain` says how each pooling is split). ``side=stored`` (default)
explains the hit, ``side=query`` the query image. Images are embedded again from their files
(or the upload) through the one pipeline, in the inference pool.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from PIL import Image

from retrieval import Collection
from retrieval.explain import Explanation, overlay_png, top_cells
from service.deps import CollectionDep, ImageId, Multipart, StateDep, read_upload
from service.engine import Upload, explain_pair
from service.schemas import ExplanationOut, error_responses

__all__ = ["router"]

router = APIRouter()

Side = Annotated[Literal["stored", "query"], Query(description="whose cells: the hit's "
                                                   "(stored) or the query image's (query)")]
Format = Annotated[Literal["png", "json"], Query(
    alias="format", description="png: the image with the top cells highlighted; json: every "
    "cell's part")]
_PNG: dict[int | str, dict[str, Any]] = {200: {
    "model": ExplanationOut, "content": {"image/png": {}},
    "description": "the PNG, or with ?format=json the grid"}}


def _answer(explained: tuple[Explanation, Image.Image], fmt: str, image_id: int,
            query_id: int | None, side: str, start: float, pooling: str) -> Response:
    explanation, image = explained
    if fmt == "png":
        return Response(overlay_png(image, explanation.grid), media_type="image/png")
    body = ExplanationOut(
        id=image_id, query_id=query_id, side=side, pooling=pooling, kind=explanation.kind,
        similarity=explanation.similarity, grid=explanation.grid.round(7).tolist(),
        top_cells=[list(c) for c in top_cells(explanation.grid)],
        image_size=[image.width, image.height], took_ms=round((time.perf_counter() - start)
                                                              * 1e3, 3))
    return Response(body.model_dump_json(), media_type="application/json")


def _run(collection: Collection, image_id: int, query: int | Upload, side: str,
         max_pixels: int) -> tuple[Explanation, Image.Image]:
    return explain_pair(collection, image_id, query, side, max_pixels)


@router.get("/images/{image_id}/explain", response_class=Response,
            responses={**_PNG, **error_responses(404, 422, 503)})
async def explain_stored(
    state: StateDep, collection: CollectionDep, image_id: ImageId,
    query_id: Annotated[int, Query(ge=1, le=2**63 - 1, description="the query: a stored "
                                   "image's id")],
    side: Side = "stored", fmt: Format = "png",
) -> Response:
    """Why stored image ``image_id`` matched stored image ``query_id``."""
    start = time.perf_counter()
    explained = await state.pool.run(partial(_run, collection, image_id, query_id, side,
                                             state.settings.max_image_pixels))
    return _answer(explained, fmt, image_id, query_id, side, start,
                   collection.manifest.pooling)


@router.post("/explain", response_class=Response, dependencies=[Multipart],
             responses={**_PNG, **error_responses(400, 404, 413, 415, 422, 503)})
async def explain_upload(
    state: StateDep, collection: CollectionDep,
    image: Annotated[UploadFile, File(description="the query image")],
    image_id: Annotated[int, Form(alias="id", ge=1, le=2**63 - 1,
                                  description="the hit: a stored image's id")],
    side: Side = "stored", fmt: Format = "png",
) -> Response:
    """Why stored image ``id`` matched the uploaded query image."""
    start = time.perf_counter()
    upload = await read_upload(image, "image")
    explained = await state.pool.run(partial(_run, collection, image_id, upload, side,
                                             state.settings.max_image_pixels))
    return _answer(explained, fmt, image_id, None, side, start, collection.manifest.pooling)
