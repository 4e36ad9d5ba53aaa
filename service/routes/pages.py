"""Pages for people: ``/`` (the search page) and the interactive API docs, all offline.

``/`` is ``service/static/index.html``; its scripts and styles, like the docs' assets, are served
by the app's ``/static`` mount (:data:`STATIC_DIR`). ``/docs`` (Swagger UI) and ``/redoc``
(ReDoc) come from files shipped in the package, not a CDN: the assets are vendored under
``service/static/docs/`` with their licences (swagger-ui-dist, Apache-2.0, with its NOTICE;
redoc, MIT; versions in ``VERSIONS``, checksums in ``SHA256SUMS``), made by
``scripts/vendor_docs_assets.sh``, so the interactive docs work on a server without internet
access.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

from service.errors import ServiceError

__all__ = ["ASSETS", "STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

ASSETS = "/static/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise ServiceError(404, "not_found", "the search page is not installed")
    return FileResponse(index, media_type="text/html")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png")


@router.get(OAUTH2_REDIRECT)
def oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon-32x32.png", with_google_fonts=False)
