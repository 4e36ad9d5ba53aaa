"""The search page in a real headless Chromium against the real service and a real index.

Needs Debian's chromium (/usr/bin/chromium) and the `playwright` Python package (its own
browser downloads are never used); skipped with a reason when either is missing.
The server is the session's shared `live` one (tests/service/conftest.py). Screenshots go
to test-output/page.png and test-output/page-phone.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, scene
from tests.service.conftest import Server

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BANNER = "This index was built with random network weights: similarities are not meaningful."
OUTPUT = REPO / "test-output"
TIMEOUT_MS = 30_000
# Every result thumbnail has been fetched and decoded, and no search is in flight.
SETTLED = """() => !document.body.classList.contains('loading')
    && [...document.querySelectorAll('#results img')]
        .every(i => i.complete && i.naturalWidth > 0)"""
LOADING = """() => [document.body.classList.contains('loading'),
    document.getElementById('results').getAttribute('aria-busy'),
    document.getElementById('status').textContent]"""


@pytest.fixture(scope="module")
def base_url(live: Server) -> str:
    """The session's real service (`python -m service` on an index built by the real CLI)."""
    return live.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def query_image(tmp_path: Path) -> Path:
    path = tmp_path / "query.png"
    scene(1234, (96, 72)).save(path)
    return path


def open_page(browser: Any, base: str, **context_args: Any) -> tuple[Any, list[str]]:
    """A fresh page on `base`; the returned list collects JS errors and off-site requests."""
    problems: list[str] = []
    context = browser.new_context(**context_args)
    context.set_default_timeout(TIMEOUT_MS)

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            problems.append(f"off-site request: {route.request.url}")
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto(f"{base}/")
    return page, problems


def rendered(page: Any) -> list[tuple[int, str, str]]:
    """(id, rank, score) of each result card, in page order."""
    cards = page.locator("#results > li")
    return [(int(li.get_attribute("data-id")), li.locator(".rank").inner_text(),
             li.locator(".score").inner_text()) for li in cards.all()]


def expected(body: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(hit["id"], f"#{rank}", f"{hit['score']:.3f}")
            for rank, hit in enumerate(body["results"], start=1)]


def is_search(response: Any) -> bool:
    return response.request.method == "POST" and "/search" in response.url


def check_banner_and_keyboard_focus(page: Any) -> None:
    banner = page.locator("#banner")
    banner.wait_for(state="visible")
    assert banner.inner_text().strip() == BANNER
    page.keyboard.press("Tab")  # the chooser is the first stop for keyboard users
    assert page.evaluate("document.activeElement.id") == "file"
    ring = "getComputedStyle(document.getElementById('drop')).outlineStyle"
    assert page.evaluate(ring) == "solid", "the drop zone shows keyboard focus"


def test_search_then_click_a_result_searches_with_it(
    browser: Any, base_url: str, query_image: Path
) -> None:
    page, problems = open_page(browser, base_url, viewport={"width": 1280, "height": 900})
    check_banner_and_keyboard_focus(page)
    busy: list[Any] = []  # the page's loading state, seen while /search is held in flight

    def look_then_send(route: Any) -> None:
        busy.append(page.evaluate(LOADING))
        route.continue_()

    page.route("**/search*", look_then_send)
    with page.expect_response(is_search) as first:
        page.set_input_files("#file", str(query_image))
    assert first.value.status == 200, first.value.text()
    body = first.value.json()
    assert body["results"], "the index is not empty, so there must be results"
    page.wait_for_function(SETTLED)
    assert rendered(page) == expected(body)
    assert page.locator("#results img").first.is_visible()
    assert page.locator("#preview").is_visible()
    assert f"{body['took_ms']:.1f} ms" in page.locator("#status").inner_text()
    assert busy == [[True, "true", "Searching…"]]
    assert page.evaluate(LOADING) == [False, "false", page.locator("#status").inner_text()]
    old_preview = page.locator("#preview").get_attribute("src")

    clicked = body["results"][-1]
    with page.expect_request(lambda r: r.url == base_url + clicked["url"]), \
            page.expect_response(is_search) as second:
        page.locator(f'#results > li[data-id="{clicked["id"]}"] button').click()
    assert second.value.status == 200, second.value.text()
    body2 = second.value.json()
    page.wait_for_function(SETTLED)
    assert rendered(page) == expected(body2)
    best = body2["results"][0]["score"]
    assert any(hit["id"] == clicked["id"] and hit["score"] >= best - 1e-4
               for hit in body2["results"]), "the page searched with the clicked image"
    assert page.locator("#preview").get_attribute("src") != old_preview
    assert page.locator("#message").is_hidden()
    assert problems == []
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "page.png"), full_page=True)


def test_a_server_error_is_shown_from_the_json_body(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, base_url)
    broken = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not a jpeg at all"}
    with page.expect_response(is_search) as info:
        page.set_input_files("#file", files=[broken])
    assert info.value.status >= 400
    error = json.loads(info.value.text())
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert error["error"] in message.inner_text()
    assert error["detail"] in message.inner_text()
    assert page.locator("#results > li").count() == 0
    assert problems == []


def test_phone_layout_fits_the_screen(browser: Any, base_url: str, query_image: Path) -> None:
    width = 390
    page, problems = open_page(browser, base_url, viewport={"width": width, "height": 844},
                               is_mobile=True, has_touch=True, device_scale_factor=2)
    page.set_input_files("#file", str(query_image))
    page.locator("#results img").first.wait_for(state="visible")
    page.wait_for_function(SETTLED)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for card in page.locator("#results .hit").all()[:6]:
        box = card.bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44  # touch targets
    assert page.locator("#banner").is_visible()
    assert problems == []
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "page-phone.png"), full_page=True)


def test_docs_render_offline(browser: Any, base_url: str) -> None:
    """Swagger UI and ReDoc come from the server itself: every other request is aborted."""
    page, problems = open_page(browser, base_url)
    page.goto(f"{base_url}/docs")
    page.locator(".opblock").first.wait_for(state="visible")
    operations = page.locator(".opblock").count()
    schema = page.request.get(f"{base_url}/openapi.json").json()
    assert operations == sum(len(ops) for ops in schema["paths"].values())
    assert page.locator(".opblock-summary-path", has_text="/duplicates").count() == 1
    assert problems == []
    page.goto(f"{base_url}/redoc")
    page.locator("[data-section-id^='operation/']").first.wait_for(state="attached")
    assert page.locator("[data-section-id^='operation/']").count() >= operations
    # ReDoc's sidebar credit is an <img> from its CDN: blocked, and nothing else is missing.
    assert all("cdn.redoc.ly" in p for p in problems), problems


def test_duplicates_view_shows_each_group_as_a_row(browser: Any, base_url: str) -> None:
    page, problems = open_page(browser, base_url)
    with page.expect_response(lambda r: "/duplicates?" in r.url) as info:
        page.locator("#view-duplicates").click()
    body = info.value.json()
    page.locator("#dup-status").filter(has_text="group").wait_for()
    assert page.locator("main").is_hidden() and page.locator("#duplicates").is_visible()
    rows = page.locator("#dup-groups > li")
    assert rows.count() == len(body["groups"])
    for row, group in zip(rows.all(), body["groups"], strict=True):
        srcs = [img.get_attribute("src") for img in row.locator("img").all()]
        assert srcs == [f"{m['url']}?size=160" for m in group["members"]]
    assert page.locator("#dup-more").is_visible() == (body["next_cursor"] is not None)
    page.locator("#view-search").click()
    page.locator("main").wait_for(state="visible")
    assert page.locator("#duplicates").is_hidden()
    assert problems == []
