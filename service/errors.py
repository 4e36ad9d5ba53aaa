"""Every failure becomes one JSON body ``{"error": CODE, "detail": ...}``, translated once here.

==========================================  ======  =========================
failure                                     status  ``error``
==========================================  ======  =========================
not an image / format not allowed           415     ``unsupported_image``
empty, truncated or corrupt image           400     ``invalid_image``
more pixels than ``max_image_pixels``       422     ``image_too_large``
request body over ``max_upload_bytes``      413     ``body_too_large``
upload not sent as multipart/form-data      415     ``unsupported_media_type``
bad parameters (k out of range, missing)    422     ``validation_error``
:class:`ConfigError` from the library       422     ``invalid_request``
malformed multipart body                    400     ``bad_request``
unknown image id / path                     404     ``not_found``
the record's file is gone                   404     ``file_missing``
method not served at this path              405     ``method_not_allowed`` + Allow (every method)
wrong or missing API key                    401     ``unauthorized``
writes disabled (no API key configured)     403     ``writes_disabled``
inference queue full                        503     ``queue_full`` + Retry-After
index still loading / failed to load        503     ``not_ready`` + Retry-After
more connections than ``max_connections``   503     ``too_many_connections`` + Retry-After
vector store down, refusing or still loading 503     ``store_unavailable`` + Retry-After
                                                    (answered by :mod:`service.http.connections`)
disk or quota full (nothing is stored)      507     ``insufficient_storage`` + Retry-After
stored file no longer decodes (thumbnail)   500     ``stored_image_unreadable``
anything else                               500     ``internal_error``
==========================================  ======  =========================

Every 503 and 507 carries ``Retry-After``. A full disk is :class:`retrieval.StorageFullError` from
the library (an ``ENOSPC`` that escaped it is treated alike): the change was rolled back and the
same request succeeds once space has been freed, without a restart.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from retrieval import (
    ConfigError,
    ImageDecodeError,
    ImageTooLargeError,
    NotFoundError,
    RetrievalError,
    StorageFullError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnsupportedImageError,
)
from service.http.inference import QueueFullError

__all__ = ["FULL_RETRY_AFTER_S", "RETRY_AFTER_S", "ServiceError", "error_response",
           "install_error_handlers"]

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
FULL_RETRY_AFTER_S = 30  # a full disk is freed by an operator, not in a second
FULL_DETAIL = ("the server's disk is full: nothing was stored or changed; retry once space has "
               "been freed")
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class ServiceError(Exception):
    """An error of the service itself, with its status and code."""

    def __init__(self, status: int, error: str, detail: str,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(detail)


def error_response(status: int, error: str, detail: Any,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON error; a 503 or 507 always says when to retry (``Retry-After``)."""
    headers = dict(headers or {})
    if status in (503, 507) and not any(k.lower() == "retry-after" for k in headers):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


STORE_DETAIL = "the vector store is unreachable or still loading; retry shortly"


def storage_full(exc: BaseException) -> JSONResponse:
    log.warning("write refused, the disk is full: %s", exc)
    return error_response(507, "insufficient_storage", FULL_DETAIL,
                          {"Retry-After": str(FULL_RETRY_AFTER_S)})


def decode_status(exc: ImageDecodeError) -> tuple[int, str]:
    """Status and code of an upload that is not an image we accept."""
    if isinstance(exc, UnsupportedImageError):
        return 415, "unsupported_image"
    if isinstance(exc, ImageTooLargeError):
        return 422, "image_too_large"
    return 400, "invalid_image"


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


async def _retrieval_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ImageDecodeError):
        status, code = decode_status(exc)
        return error_response(status, code, str(exc))
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, ConfigError):
        return error_response(422, "invalid_request", str(exc))
    if isinstance(exc, StorageFullError):
        return storage_full(exc)
    if isinstance(exc, StoreUnavailableError | StoreTimeoutError):
        log.warning("vector store unavailable: %s", exc)
        return error_response(503, "store_unavailable", STORE_DETAIL,
                              {"Retry-After": str(RETRY_AFTER_S)})
    log.error("request failed: %s: %s", type(exc).__name__, exc)
    return error_response(500, "internal_error", "internal server error")


async def _queue_full(_: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "queue_full", str(exc), {"Retry-After": str(RETRY_AFTER_S)})


def _allowed_methods(request: Request) -> str | None:
    """Every method some route serves at this path (Starlette's 405 names one route's only)."""
    routes = request.app.router.routes
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                      for route in routes)]
    return ", ".join(allowed) if allowed else None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers or {})
    allowed = _allowed_methods(request) if exc.status_code == 405 else None
    if allowed is not None:
        headers["Allow"] = allowed
    return error_response(exc.status_code, code, exc.detail, headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k not in ("input", "url")} for e in exc.errors()]
    return error_response(422, "validation_error", jsonable_encoder(errors))


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    """The client went away (or was cut off for sending too slowly) mid-request: not an error."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return error_response(400, "bad_request", "the client disconnected")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:  # e.g. spooling a body to /tmp
        return storage_full(exc)
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the translations of the table in the module docstring."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RetrievalError, _retrieval_error)
    app.add_exception_handler(QueueFullError, _queue_full)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
