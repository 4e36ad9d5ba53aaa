"""The translations of :mod:`service.errors` for a full disk and for every 503: the JSON error
with ``Retry-After``, whatever raised it (an app with only the handlers, in process)."""

from __future__ import annotations

import errno

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

from retrieval import StorageFullError, StoreError, StoreTimeoutError, StoreUnavailableError
from service.errors import FULL_RETRY_AFTER_S, RETRY_AFTER_S, install_error_handlers


def _raise(exc: Exception) -> None:
    raise exc


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.get("/store-full")(lambda: _raise(StorageFullError("no space left to write /srv/x")))
    app.get("/enospc")(lambda: _raise(OSError(errno.ENOSPC, "No space left on device")))
    app.get("/unavailable")(lambda: _raise(HTTPException(503, "down for a moment")))
    app.get("/bug")(lambda: _raise(OSError(errno.EIO, "I/O error")))
    app.get("/store-down")(lambda: _raise(StoreUnavailableError("cannot reach Milvus at http://h")))
    app.get("/store-loading")(lambda: _raise(StoreTimeoutError("collection c still loading")))
    app.get("/store-refused")(lambda: _raise(StoreError("Milvus at http://h refused insert")))
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("route", ["/store-full", "/enospc"])
def test_a_full_disk_is_507_insufficient_storage(client: TestClient, route: str) -> None:
    response = client.get(route)
    assert response.status_code == 507
    assert response.json()["error"] == "insufficient_storage"
    assert "/srv" not in response.json()["detail"]  # no server path in the answer
    assert response.headers["Retry-After"] == str(FULL_RETRY_AFTER_S)


def test_every_503_says_when_to_retry(client: TestClient) -> None:
    response = client.get("/unavailable")
    assert response.status_code == 503
    assert response.json() == {"error": "http_503", "detail": "down for a moment"}
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)


def test_other_os_errors_stay_internal_errors(client: TestClient) -> None:
    response = client.get("/bug")
    assert (response.status_code, response.json()["error"]) == (500, "internal_error")
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize("route", ["/store-down", "/store-loading"])
def test_an_unreachable_or_loading_store_is_503_with_retry_after(client: TestClient,
                                                                route: str) -> None:
    response = client.get(route)
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable"
    assert "http://h" not in response.json()["detail"]  # no store address in the answer
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)


def test_a_store_that_refuses_an_operation_is_an_internal_error(client: TestClient) -> None:
    response = client.get("/store-refused")
    assert (response.status_code, response.json()["error"]) == (500, "internal_error")
