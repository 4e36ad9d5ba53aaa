"""Search and image routes: ``POST /search``, ``GET|POST|DELETE /images``.

CPU work (decoding, the forward pass, FAISS) runs in the bounded inference pool; record lookups
and file serving are plain ``def`` routes, run by Starlette in its thread pool. Files are only
ever served from the path an image's record holds, never from a path the client names.
"""

from __future__ import annotations

import re
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BeforeValidator
from starlette.datastructures import UploadFile as StarletteUpload

from retrieval import MEDIA_TYPES, ImageDecodeError
from retrieval.index import MAX_RERANK_K, Added, Hit, ImageRecord, supports_duplicates
from service.duplicates import reported_duplicates
from service.engine import Upload, add_uploads, remove_image, search_upload, similar_to
from service.errors import ServiceError
from service.paths import PathView
from service.schemas import (
    AddedImage,
    AddResponse,
    DeleteResponse,
    ErrorBody,
    ImageOut,
    SearchHit,
    SearchResponse,
    file_url,
)
from service.state import AuthorizedWriter, CollectionDep, ServiceState, StateDep
from service.thumbnails import make_thumbnail

__all__ = ["router"]

router = APIRouter()

CACHE_CONTROL = "private, max-age=3600"
MAX_NAME = 200


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


def require_multipart(request: Request) -> None:
    """Uploads must be ``multipart/form-data`` (415 otherwise)."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        raise ServiceError(415, "unsupported_media_type",
                           "send the upload as multipart/form-data")


Multipart = Depends(require_multipart)


def search_k(
    state: StateDep,
    k_query: Annotated[int | None, Query(alias="k", ge=1, description="results wanted "
                                         "(default 10, at most the server's max_k)")] = None,
    k_form: Annotated[int | None, Form(alias="k", ge=1, description="k as a form field "
                                       "(the query string wins)")] = None,
) -> int:
    k = k_query if k_query is not None else k_form if k_form is not None else 10
    return _bounded_k(state, k, "query" if k_query is not None else "body")


def query_k(
    state: StateDep,
    k: Annotated[int, Query(ge=1, description="results wanted (at most the server's max_k)")] = 10,
) -> int:
    return _bounded_k(state, k, "query")


def _bounded_k(state: ServiceState, k: int, where: str) -> int:
    limit = state.settings.max_k
    if k > limit:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": (where, "k"), "ctx": {"le": limit},
            "msg": f"Input should be less than or equal to {limit}"}])
    return k


_DECIMAL_ID = re.compile(r"[1-9][0-9]{0,18}")

#: ``?qe=K``: αQE with the K nearest (0: off; default: the index's), bounded like the index's.
QeK = Annotated[int | None, Query(alias="qe", ge=0, le=MAX_RERANK_K,
                                  description="αQE neighbours (0: off; default: the index's)")]


def _strict_id(value: object) -> object:
    """Ids are plain positive decimals: no sign, leading zero, underscore or space (422)."""
    if isinstance(value, str) and not _DECIMAL_ID.fullmatch(value):
        raise ValueError("an image id is a positive decimal integer without sign, leading "
                         "zeros or separators")
    return value


ImageId = Annotated[int, BeforeValidator(_strict_id),
                    PathParam(ge=1, le=2**63 - 1, description="image id", examples=[1])]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="any unique string (printable ASCII, no spaces): a retried request with the same "
                "key and the same files answers with the first one's result")]


def _image_out(record: ImageRecord, paths: PathView) -> ImageOut:
    return ImageOut(id=record.id, path=paths.show(record.path), sha256=record.sha256,
                    width=record.width, height=record.height, added_at=record.added_at,
                    url=file_url(record.id))


def _added_out(added: Added, paths: PathView) -> AddedImage:
    return AddedImage(id=added.id, path=paths.show(added.path), sha256=added.sha256,
                      width=added.width, height=added.height, added_at=added.added_at,
                      url=file_url(added.id), duplicate=added.duplicate)


async def _read(upload: StarletteUpload, fallback: str) -> Upload:
    name = (upload.filename or fallback)[:MAX_NAME]
    return Upload(name, await upload.read())


@router.post("/search", response_model=SearchResponse, dependencies=[Multipart],
             responses=_errors(400, 413, 415, 422, 503))
async def search(
    state: StateDep,
    collection: CollectionDep,
    k: Annotated[int, Depends(search_k)],
    image: Annotated[UploadFile, File(description="the query image (JPEG, PNG, WebP, GIF, "
                                      "BMP or TIFF)")],
    qe: QeK = None,
) -> SearchResponse:
    """The ``k`` stored images most like the uploaded one, best first."""
    start = time.perf_counter()
    upload = await _read(image, "image")
    settings = state.settings
    hits = await state.pool.run(
        partial(search_upload, collection, upload, k, settings.max_image_pixels, qe))
    return _search_response(hits, start, state.paths)


def _search_response(hits: list[Hit], start: float, paths: PathView) -> SearchResponse:
    results = [SearchHit(id=h.id, score=h.score, path=paths.show(h.record.path),
                         url=file_url(h.id)) for h in hits]
    return SearchResponse(results=results, took_ms=round((time.perf_counter() - start) * 1e3, 3))


@router.get("/images/{image_id}/similar", response_model=SearchResponse,
            responses=_errors(404, 422, 503))
async def similar(state: StateDep, collection: CollectionDep, image_id: ImageId,
                  k: Annotated[int, Depends(query_k)], qe: QeK = None) -> SearchResponse:
    """The ``k`` stored images most like stored image ``image_id`` (itself left out), from its
    stored vector: nothing is decoded or embedded."""
    start = time.perf_counter()
    hits = await state.pool.run(partial(similar_to, collection, image_id, k, qe))
    return _search_response(hits, start, state.paths)


@router.get("/images/{image_id}", response_model=ImageOut, responses=_errors(404, 422, 503))
def get_image(state: StateDep, collection: CollectionDep, image_id: ImageId) -> ImageOut:
    """The stored record of one image."""
    return _image_out(collection.index.get(image_id), state.paths)


@router.get("/images/{image_id}/file", response_class=Response,
            responses={200: {"content": {"image/*": {}}, "description": "the image file, or a "
                             "JPEG thumbnail with ?size="}, **_errors(404, 422, 500, 503)})
def get_image_file(
    state: StateDep,
    collection: CollectionDep,
    image_id: ImageId,
    size: Annotated[int | None, Query(ge=16, le=1024, description="longer side of a JPEG "
                                      "thumbnail")] = None,
) -> Response:
    """The image itself, or a JPEG thumbnail of it."""
    path = Path(collection.index.get(image_id).path)
    if not path.is_file():
        raise ServiceError(404, "file_missing", f"the file of image {image_id} is gone")
    if size is None:
        media_type = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media_type,
                            headers={"Cache-Control": CACHE_CONTROL,
                                     "X-Content-Type-Options": "nosniff"})
    data = state.thumbnails.get((image_id, size))
    if data is None:
        try:
            data = make_thumbnail(path, size, max_pixels=state.settings.max_image_pixels)
        except ImageDecodeError as exc:
            raise ServiceError(500, "stored_image_unreadable",
                               f"the file of image {image_id} cannot be decoded") from exc
        state.thumbnails.put((image_id, size), data)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": CACHE_CONTROL})


# The add route reads its multipart body itself, in the handler: FastAPI parses declared File
# parameters before any dependency runs, which would let a client without the key make the
# server receive and spool a whole upload before its 401. This is the schema such a parameter
# would have produced.
ADD_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["images"], "properties": {"images": {
        "type": "array", "items": {"type": "string", "format": "binary"},
        "description": "one or more images"}}}}}}}


async def _form_files(request: Request, field: str) -> list[Upload]:
    """The files of multipart ``field`` (422 when there are none or one is not a file)."""
    async with request.form() as form:
        values = form.getlist(field)
        files = [f for f in values if isinstance(f, StarletteUpload)]
        if not values or len(files) < len(values):
            raise RequestValidationError([{
                "type": "missing" if not values else "value_error", "loc": ("body", field),
                "msg": "Field required" if not values else "Expected UploadFile"}])
        return [await _read(f, f"image{i}") for i, f in enumerate(files)]


@router.post("/images", status_code=201, response_model=AddResponse,
             dependencies=[AuthorizedWriter, Multipart], openapi_extra=ADD_BODY,
             responses={200: {"model": AddResponse, "description": "every file was already "
                              "stored (each one `duplicate`)"},
                        **_errors(400, 401, 403, 413, 415, 422, 503)})
async def add_images(
    state: StateDep, collection: CollectionDep, request: Request,
    idempotency_key: IdempotencyKey = None,
    report_duplicates: Annotated[bool, Query(description="also answer, for each added image, "
                                             "its near-duplicates stored before")] = False,
) -> JSONResponse:
    """Store and index images (field ``images``) in one transaction: all of them or none.

    Durable once this answers. 201 when something was added, 200 when every file's content was
    already stored. The body is read only once the key has been checked.
    """
    if report_duplicates and not supports_duplicates(collection.index):
        raise ServiceError(422, "invalid_request", "report_duplicates needs the FAISS+SQLite "
                           "store; this index keeps its vectors in Milvus")
    uploads = await _form_files(request, "images")
    settings = state.settings
    outcome = await state.pool.run(partial(
        add_uploads, collection, uploads, settings.uploads_dir, settings.max_image_pixels,
        request_key=idempotency_key, key_ttl_s=settings.idempotency_ttl_s))
    body = AddResponse(added=[_added_out(a, state.paths) for a in outcome.added], durable=True)
    if report_duplicates:
        body.duplicates = await state.pool.run(
            partial(reported_duplicates, collection, [a.id for a in outcome.added],
                    state.paths))
    status = 200 if all(a.duplicate for a in outcome.added) else 201
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


@router.delete("/images/{image_id}", response_model=DeleteResponse,
               dependencies=[AuthorizedWriter], responses=_errors(401, 403, 404, 422, 503))
async def delete_image(state: StateDep, collection: CollectionDep,
                       image_id: ImageId) -> DeleteResponse:
    """Remove an image from the index (its uploaded file, shared by content, is kept)."""
    await state.pool.run(partial(remove_image, collection, image_id))
    return DeleteResponse(id=image_id, deleted=True, durable=True)
