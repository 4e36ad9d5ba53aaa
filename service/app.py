"""The FastAPI application factory and its lifespan.

``create_app(settings)`` builds an app holding everything on ``app.state.service`` (no module
globals): the settings, the bounded inference pool, metrics, the thumbnail cache and, once the
lifespan's loader thread has opened it, the collection. The lifespan waits for admitted jobs and
closes the index (writing its snapshot) on shutdown. A read-only server (no API key) also runs a
follower task that replays what other processes commit to the store every ``follow_interval_s``.

Middleware, outermost first: metrics, CORS (only with ``cors_origins``), the body-size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from retrieval.index import FollowsWriter
from service.errors import install_error_handlers
from service.http.limits import BodySizeLimit
from service.http.metrics import MetricsMiddleware
from service.routes import catalog, duplicates, explain, health, images, pages, search
from service.settings import Settings
from service.state import ServiceState, load_collection

__all__ = ["create_app"]

log = logging.getLogger(__name__)

OnFatal = Callable[[BaseException], None]

DESCRIPTION = """Content-based image retrieval over one index directory.

Errors are always JSON `{"error": CODE, "detail": ...}`. Writes (`POST /images`,
`DELETE /images/{id}`) are enabled only when the server has an API key (403 otherwise) and need
`Authorization: Bearer <key>` (401 otherwise). A 503 carries `Retry-After`.
"""


def _version() -> str:
    try:
        return importlib.metadata.version("cbir")
    except importlib.metadata.PackageNotFoundError:
        return "0"


async def _load(state: ServiceState, on_fatal: OnFatal | None) -> None:
    try:
        state.loaded(await asyncio.to_thread(load_collection, state.settings))
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.error("cannot serve %s: %s", state.settings.index_dir, state.load_error)
        if on_fatal is not None:
            on_fatal(exc)


async def _follow(state: ServiceState, loader: asyncio.Task[None]) -> None:
    """Replay what ``cbir index`` commands commit, until cancelled (read-only servers)."""
    await asyncio.shield(loader)
    if state.collection is None or not state.collection.index.read_only:
        return
    while True:
        await asyncio.sleep(state.settings.follow_interval_s)
        collection = state.collection
        if collection is None:
            return
        try:
            index = collection.index  # only stores that follow a writer (a Milvus one is current)
            if isinstance(index, FollowsWriter) and await asyncio.to_thread(index.refresh):
                state.loaded(collection)  # a first build may have set the images folder
        except Exception as exc:  # keep serving what is loaded; the next round retries
            log.warning("cannot follow the store of %s: %s: %s", state.settings.index_dir,
                        type(exc).__name__, exc)


async def _stop(state: ServiceState, loader: asyncio.Task[None],
                follower: asyncio.Task[None]) -> None:
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    await loader
    await asyncio.to_thread(state.pool.shutdown)
    if state.collection is not None:
        await asyncio.to_thread(state.collection.close)
        state.collection = None
        log.info("index %s closed", state.settings.index_dir)


@asynccontextmanager
async def _lifespan(app: FastAPI, *, on_fatal: OnFatal | None) -> AsyncIterator[None]:
    state: ServiceState = app.state.service
    loader = asyncio.create_task(_load(state, on_fatal))
    follower = asyncio.create_task(_follow(state, loader))
    try:
        yield
    finally:
        await _stop(state, loader, follower)


def create_app(settings: Settings, *, on_fatal: OnFatal | None = None) -> FastAPI:
    """The app for ``settings``; ``on_fatal`` is called if the index cannot be opened."""
    app = FastAPI(title="cbir", version=_version(), description=DESCRIPTION,
                  lifespan=partial(_lifespan, on_fatal=on_fatal), docs_url=None, redoc_url=None)
    state = ServiceState.from_settings(settings)
    app.state.service = state
    install_error_handlers(app)
    for module in (health, search, images, catalog, explain, duplicates,
                   pages):  # the OpenAPI paths' order
        app.include_router(module.router)
    if pages.STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    state.metrics.gauges(partial(health.gauges, state))
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
