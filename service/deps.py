"""Every dependency of the routes, as ``Annotated`` aliases (FastAPI's recommended style).

=====================  ========================================================================
``StateDep``           the app's :class:`~service.state.ServiceState`
``CollectionDep``      the loaded collection (503 ``not_ready`` + Retry-After before)
``AuthorizedWriter``   writes need a configured key (else 403) sent as a Bearer token (else 401)
``Multipart``          the body must be ``multipart/form-data`` (else 415)
``SearchK``            ``k`` from the query string or a form field, at most ``max_k`` (422)
``QueryK``             ``k`` from the query string, at most ``max_k`` (422)
``QeK``                ``?qe=``: αQE neighbours (0: off; default: the index's)
``SearchWindow``       ``k`` as ``SearchK`` + ``?offset=`` + ``?min_score=``: offset + k at most
                       ``max_depth`` (422); ``?folder=``, ``?added_after=``, ``?added_before=``,
                       ``?tag=`` (repeated: all must match); ``?diffusion=`` (on, off,
                       name=value,...: 422 when unparsable)
``QueryWindow``        the same with ``k`` from the query string only
``UploadBox``          ``bbox`` (x1,y1,x2,y2) from the query string or a form field
``QueryBox``           ``?bbox=`` (x1,y1,x2,y2)
``PageCursor``         ``?cursor=`` (the last id seen) and ``?limit=`` of ``GET /images``
``Where``              ``?folder=``, ``?added_after=``, ``?added_before=``, ``?tag=`` (none: no
                       filter)
``ImageId``            a path id: a plain positive decimal (422 otherwise)
``IdempotencyKey``     the ``Idempotency-Key`` header of an add
=====================  ========================================================================

and :func:`read_upload`, which the upload routes share to read a file of the body.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Form, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator, StringConstraints
from starlette.datastructures import UploadFile

from retrieval import Box, Collection, parse_box
from retrieval.index import MAX_RERANK_K, MAX_TAG_LENGTH, MAX_TAGS, Diffusion, RecordFilter
from service.engine import Upload, Window
from service.errors import RETRY_AFTER_S, ServiceError
from service.state import ServiceState

__all__ = [
    "MAX_DEPTH",
    "MAX_PAGE",
    "TAG_PATTERN",
    "AuthorizedWriter",
    "CollectionDep",
    "IdempotencyKey",
    "ImageId",
    "Multipart",
    "PageCursor",
    "QeK",
    "QueryBox",
    "QueryK",
    "QueryWindow",
    "SearchK",
    "SearchWindow",
    "StateDep",
    "Tag",
    "UploadBox",
    "Where",
    "get_collection",
    "get_state",
    "max_depth",
    "read_upload",
]

MAX_NAME = 200
#: offset + k of a search is at most max(MAX_DEPTH, max_k) (422 beyond).
MAX_DEPTH = 1000
#: ``GET /images?limit=`` at most this.
MAX_PAGE = 1000


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_collection(state: StateDep) -> Collection:
    if state.collection is None:
        detail = (f"the index failed to load: {state.load_error}" if state.load_error
                  else "the index is still loading")
        raise ServiceError(503, "not_ready", detail, {"Retry-After": str(RETRY_AFTER_S)})
    return state.collection


CollectionDep = Annotated[Collection, Depends(get_collection)]

_bearer = HTTPBearer(auto_error=False, description="the server's CBIR_API_KEY")


def require_writer(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Writes need a configured API key (else 403) presented as a Bearer token (else 401)."""
    key = state.settings.api_key
    if key is None:
        raise ServiceError(403, "writes_disabled",
                           "this server is read-only: start it with CBIR_API_KEY set to enable "
                           "POST and DELETE /images")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise ServiceError(401, "unauthorized", "a valid 'Authorization: Bearer <key>' is required",
                           {"WWW-Authenticate": "Bearer"})


AuthorizedWriter = Depends(require_writer)


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


def max_depth(state: ServiceState) -> int:
    """The deepest result a search reaches: offset + k at most this."""
    return max(MAX_DEPTH, state.settings.max_k)


def _too_deep(limit: int) -> RequestValidationError:
    return RequestValidationError([{
        "type": "less_than_equal", "loc": ("query", "offset"), "ctx": {"le": limit},
        "msg": f"offset + k should be less than or equal to {limit}"}])


_OFFSET_HELP = "skip the best `offset` hits: the page offset … offset+k (offset + k at most 1000, "\
               "or max_k when larger)"
_MIN_SCORE_HELP = "leave out hits scoring below this (similarity: inner product of unit vectors)"
Offset = Annotated[int, Query(ge=0, le=2**31, description=_OFFSET_HELP)]
MinScore = Annotated[float | None, Query(allow_inf_nan=False, ge=-1e9, le=1e9,
                                         description=_MIN_SCORE_HELP)]


Folder = Annotated[str | None, Query(min_length=1, max_length=1000, pattern=r"^[^/\x00][^\x00]*$",
                                     description="only images under this folder (relative to "
                                     "the indexed folder and to the uploads folder; its "
                                     "sub-folders included)")]
Seconds = Annotated[float | None, Query(allow_inf_nan=False, ge=0, le=1e11)]
#: a tag as the query string and forms take it (the library checks the rest: no comma...).
TAG_PATTERN = r"^[^,\x00-\x1f\x7f]+$"
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH,
                                       pattern=TAG_PATTERN)]
Tags = Annotated[list[Tag] | None, Query(
    alias="tag", max_length=MAX_TAGS, description="only images holding this tag (repeat for "
    f"several: all must match; 1 to {MAX_TAG_LENGTH} characters, no comma)")]


def record_filter(state: StateDep, folder: Folder = None,
                  added_after: Annotated[Seconds, Query(description="only images added at or "
                                                        "after this (seconds since the epoch)")]
                  = None,
                  added_before: Annotated[Seconds, Query(description="only images added before "
                                                         "this (seconds since the epoch)")]
                  = None, tags: Tags = None) -> RecordFilter | None:
    where = RecordFilter(folder, added_after, added_before, tuple(tags or ()),
                         roots=state.upload_roots)
    return where if where.active else None


Where = Annotated[RecordFilter | None, Depends(record_filter)]


_DIFFUSION_HELP = ("diffusion re-ranking on the index's neighbour graph: on, off, or name=value "
                   "pairs over the index's settings, e.g. k=30,alpha=0.95 (default: the "
                   "index's); 422 when the index keeps no graph")
DiffusionSpec = Annotated[str | None, Query(min_length=1, max_length=200,
                                            description=_DIFFUSION_HELP)]


def search_window(state: StateDep, k: SearchK, where: Where, offset: Offset = 0,
                  min_score: MinScore = None, diffusion: DiffusionSpec = None) -> Window:
    if offset + k > max_depth(state):
        raise _too_deep(max_depth(state))
    if diffusion is not None:
        Diffusion.parse(diffusion)  # ConfigError: 422 before the upload is read
    return Window(k, offset, min_score, where, diffusion)


def query_window(state: StateDep, k: QueryK, where: Where, offset: Offset = 0,
                 min_score: MinScore = None, diffusion: DiffusionSpec = None) -> Window:
    return search_window(state, k, where, offset, min_score, diffusion)


def _bounded_k(state: ServiceState, k: int, where: str) -> int:
    limit = state.settings.max_k
    if k > limit:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": (where, "k"), "ctx": {"le": limit},
            "msg": f"Input should be less than or equal to {limit}"}])
    return k


SearchK = Annotated[int, Depends(search_k)]
QueryK = Annotated[int, Depends(query_k)]

SearchWindow = Annotated[Window, Depends(search_window)]
QueryWindow = Annotated[Window, Depends(query_window)]

_BOX_PATTERN = r"^-?[0-9]{1,9},-?[0-9]{1,9},-?[0-9]{1,9},-?[0-9]{1,9}$"
_BOX_HELP = ("search the region x1,y1,x2,y2 of the image (integer pixels of the upright image, "
             "x2 and y2 excluded): cropped at full resolution, then embedded as a whole image")


def upload_box(
    box_query: Annotated[str | None, Query(alias="bbox", pattern=_BOX_PATTERN,
                                           description=_BOX_HELP)] = None,
    box_form: Annotated[str | None, Form(alias="bbox", pattern=_BOX_PATTERN,
                                         description="bbox as a form field (the query string "
                                                     "wins)")] = None,
) -> Box | None:
    text = box_query if box_query is not None else box_form
    return None if text is None else parse_box(text)


def query_box(
    box: Annotated[str | None, Query(alias="bbox", pattern=_BOX_PATTERN,
                                     description=_BOX_HELP)] = None,
) -> Box | None:
    return None if box is None else parse_box(box)


UploadBox = Annotated[Box | None, Depends(upload_box)]
QueryBox = Annotated[Box | None, Depends(query_box)]


def page_cursor(
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1, description="the last id of the previous "
                                 "page (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="records per page "
                                f"(at most {MAX_PAGE})")] = 100,
) -> tuple[int, int]:
    return cursor, limit


PageCursor = Annotated[tuple[int, int], Depends(page_cursor)]

#: ``?qe=K``: αQE with the K nearest (0: off; default: the index's), bounded like the index's.
QeK = Annotated[int | None, Query(alias="qe", ge=0, le=MAX_RERANK_K,
                                  description="αQE neighbours (0: off; default: the index's)")]

_DECIMAL_ID = re.compile(r"[1-9][0-9]{0,18}")


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


async def read_upload(upload: UploadFile, fallback: str) -> Upload:
    """An uploaded file's bytes and its client's name (cut to ``MAX_NAME``; else ``fallback``)."""
    name = (upload.filename or fallback)[:MAX_NAME]
    return Upload(name, await upload.read())
