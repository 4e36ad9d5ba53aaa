"""Image routes: ``GET /images`` (the collection in pages of ids), ``GET /images/{id}``,
``GET /images/{id}/file``, ``POST /images``, ``DELETE /images/{id}``.

Adds and removes run in the bounded inference pool; record lookups and file serving are plain
``def`` routes, run by Starlette in its thread pool. Files are only ever served from the path an
image's record holds, never from a path the client names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile as StarletteUpload

from retrieval import MEDIA_TYPES, Collection, ConfigError, ImageDecodeError
from retrieval.index import (
    Added,
    DuplicatePair,
    clean_folder,
    clean_tags,
    duplicates_of,
    id_page,
    supports_duplicates,
)
from service.deps import (
    AuthorizedWriter,
    CollectionDep,
    IdempotencyKey,
    ImageId,
    Multipart,
    PageCursor,
    StateDep,
    Where,
    read_upload,
)
from service.engine import Upload, add_uploads, remove_image
from service.errors import ServiceError
from service.paths import PathView
from service.schemas import (
    AddedImage,
    AddResponse,
    DeleteResponse,
    DuplicateOut,
    ImageOut,
    ImagesPage,
    error_responses,
    file_url,
    image_out,
)
from service.thumbnails import make_thumbnail

__all__ = ["reported_duplicates", "router"]

router = APIRouter()

CACHE_CONTROL = "private, max-age=3600"
#: the longest upload ``folder`` field (as ``?folder=``).
MAX_FOLDER = 1000


def _added_out(added: Added, paths: PathView) -> AddedImage:
    return AddedImage(id=added.id, path=paths.show(added.path), sha256=added.sha256,
                      width=added.width, height=added.height, added_at=added.added_at,
                      url=file_url(added.id), tags=list(added.tags),
                      folder=paths.folder(added.path), duplicate=added.duplicate)


@router.get("/images", response_model=ImagesPage, responses=error_responses(422, 503))
def list_images(state: StateDep, collection: CollectionDep, page: PageCursor,
                where: Where) -> ImagesPage:
    """Stored records in id order, ``limit`` at a time after ``cursor`` (only those the filters
    match); the next page starts after ``next_cursor`` (null: nothing more)."""
    cursor, limit = page
    ids = id_page(collection.index, cursor, limit + 1, where)
    records = collection.index.records(ids[:limit])
    more = len(ids) > limit
    return ImagesPage(images=[image_out(r, state.paths) for r in records],
                      next_cursor=ids[limit - 1] if more else None)


@router.get("/images/{image_id}", response_model=ImageOut,
            responses=error_responses(404, 422, 503))
def get_image(state: StateDep, collection: CollectionDep, image_id: ImageId) -> ImageOut:
    """The stored record of one image."""
    return image_out(collection.index.get(image_id), state.paths)


@router.get("/images/{image_id}/file", response_class=Response,
            responses={200: {"content": {"image/*": {}}, "description": "the image file, or a "
                             "JPEG thumbnail with ?size="}, **error_responses(404, 422, 500, 503)})
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
    "schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "description": "one or more images"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4200,
                                            "pattern": r"^[^\x00-\x1f\x7f]*$"},
                 "description": "tags for every added image: comma-separated and/or the field "
                                "repeated (each 1 to 64 characters; an image already stored "
                                "gets them added)"},
        "folder": {"type": "string", "maxLength": 1000, "pattern": r"^[^/\x00-\x1f\x7f]"
                   r"[^\x00-\x1f\x7f]*$",
                   "description": "the folder the added images belong to: a sub-folder of the "
                                  "uploads folder, named as ?folder= names it (relative, no "
                                  "'..': 422 otherwise); default: the uploads folder itself. "
                                  "An image already stored keeps its folder"}}}}}}}


def _form_tags(values: list[Any]) -> tuple[str, ...]:
    """The tags of the form's ``tags`` fields (comma-separated or repeated; 422 otherwise)."""
    if any(not isinstance(v, str) for v in values):
        raise RequestValidationError([{"type": "string_type", "loc": ("body", "tags"),
                                       "msg": "Input should be a valid string"}])
    return clean_tags(t for v in values for t in v.split(",") if t.strip())


def _form_folder(values: list[Any]) -> str:
    """The form's ``folder`` (at most one text field, as :func:`clean_folder` reads it; 422
    otherwise)."""
    if len(values) > 1 or any(not isinstance(v, str) for v in values):
        raise RequestValidationError([{"type": "string_type", "loc": ("body", "folder"),
                                       "msg": "Input should be one valid string"}])
    if values and len(values[0]) > MAX_FOLDER:
        raise ConfigError(f"folder must be at most {MAX_FOLDER} characters")
    return clean_folder(values[0]) if values else ""


@dataclass(frozen=True)
class _AddForm:
    uploads: list[Upload]
    tags: tuple[str, ...]
    folder: str


async def _form_fields(request: Request, field: str) -> _AddForm:
    """The files of multipart ``field`` (422 when there are none or one is not a file), the
    tags of the ``tags`` fields and the ``folder`` field."""
    async with request.form() as form:
        values = form.getlist(field)
        files = [f for f in values if isinstance(f, StarletteUpload)]
        if not values or len(files) < len(values):
            raise RequestValidationError([{
                "type": "missing" if not values else "value_error", "loc": ("body", field),
                "msg": "Field required" if not values else "Expected UploadFile"}])
        tags = _form_tags(form.getlist("tags"))
        folder = _form_folder(form.getlist("folder"))
        return _AddForm([await read_upload(f, f"image{i}") for i, f in enumerate(files)], tags,
                        folder)


@router.post("/images", status_code=201, response_model=AddResponse,
             dependencies=[AuthorizedWriter, Multipart], openapi_extra=ADD_BODY,
             responses={200: {"model": AddResponse, "description": "every file was already "
                              "stored (each one `duplicate`)"},
                        **error_responses(400, 401, 403, 413, 415, 422, 503, 507)})
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
        raise ServiceError(422, "invalid_request", "report_duplicates needs a store that keeps "
                           "layout descriptors (FAISS+SQLite or Milvus); this one does not")
    form = await _form_fields(request, "images")
    settings = state.settings
    outcome = await state.pool.run(partial(
        add_uploads, collection, form.uploads, settings.uploads_dir, settings.max_image_pixels,
        request_key=idempotency_key, key_ttl_s=settings.idempotency_ttl_s, tags=form.tags,
        sub_folder=form.folder))
    body = AddResponse(added=[_added_out(a, state.paths) for a in outcome.added], durable=True)
    if report_duplicates:
        body.duplicates = await state.pool.run(
            partial(reported_duplicates, collection, [a.id for a in outcome.added],
                    state.paths))
    status = 200 if all(a.duplicate for a in outcome.added) else 201
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def reported_duplicates(collection: Collection, ids: list[int],
                        view: PathView) -> list[list[DuplicateOut]]:
    """For each of ``ids`` (just added), its near-duplicates among the images stored before."""
    found = duplicates_of(collection.index, ids, exclude=ids)
    others = {(p.b if p.a == i else p.a) for i in ids for p in found[i]}
    paths = {r.id: view.show(r.path) for r in collection.index.records(sorted(others))}

    def out(i: int, p: DuplicatePair) -> DuplicateOut:
        j = p.b if p.a == i else p.a
        return DuplicateOut(id=j, score=p.score, path=paths.get(j, ""), url=file_url(j))

    return [[out(i, p) for p in found[i]] for i in ids]


@router.delete("/images/{image_id}", response_model=DeleteResponse,
               dependencies=[AuthorizedWriter],
               responses=error_responses(401, 403, 404, 422, 503, 507))
async def delete_image(state: StateDep, collection: CollectionDep,
                       image_id: ImageId) -> DeleteResponse:
    """Remove an image from the index (its uploaded file, shared by content, is kept)."""
    await state.pool.run(partial(remove_image, collection, image_id))
    return DeleteResponse(id=image_id, deleted=True, durable=True)
