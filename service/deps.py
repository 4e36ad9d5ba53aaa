"""Every dependency of the routes, as ``Annotated`` aliases (FastAPI's recommended style).

=====================  ========================================================================
``StateDep``           the app's :class:`~service.state.ServiceState`
``CollectionDep``      the loaded collection (503 ``not_ready`` + Retry-After before)
``AuthorizedWriter``   writes need a configured key (else 403) sent as a Bearer token (else 401)
``Multipart``          the body must be ``multipart/form-data`` (else 415)
``SearchK``            ``k`` from the query string or a form field, at most ``max_k`` (422)
``QueryK``             ``k`` from the query string, at most ``max_k`` (422)
``QeK``                ``?qe=``: αQE neighbours (0: off; default: the index's)
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
from pydantic import BeforeValidator
from starlette.datastructures import UploadFile

from retrieval import Collection
from retrieval.index import MAX_RERANK_K
from service.engine import Upload
from service.errors import RETRY_AFTER_S, ServiceError
from service.state import ServiceState

__all__ = ["AuthorizedWriter", "CollectionDep", "IdempotencyKey", "ImageId", "Multipart", "QeK",
           "QueryK", "SearchK", "StateDep", "get_collection", "get_state", "read_upload"]

MAX_NAME = 200


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


def _bounded_k(state: ServiceState, k: int, where: str) -> int:
    limit = state.settings.max_k
    if k > limit:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": (where, "k"), "ctx": {"le": limit},
            "msg": f"Input should be less than or equal to {limit}"}])
    return k


SearchK = Annotated[int, Depends(search_k)]
QueryK = Annotated[int, Depends(query_k)]

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
