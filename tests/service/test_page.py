"""The search page in a real headless Chromium against the real service and a real index: an
upload search, a click on a result (a /similar search with it), the collection's gallery, a box
drawn on the query image (a region search), a folder filter, "More results" and an explanation.

Needs Debian's chromium (/usr/bin/chromium, or the binary CBIR_TEST_CHROMIUM names) and the
`playwright` Python package (its own browser downloads are never used); skipped with a reason
when either is missing.
The server is the session's shared `live` one (tests/service/conftest.py). Screenshots go
to test-output/page.png and test-output/page-phone.png.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, scene
from tests.service.conftest import AUTH, Server

CHROMIUM = Path(os.environ.get("CBIR_TEST_CHROMIUM", "/usr/bin/chromium"))
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


def is_similar(response: Any) -> bool:
    return response.request.method == "GET" and "/similar?" in response.url


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
            page.expect_response(is_similar) as second:
        page.locator(f'#results > li[data-id="{clicked["id"]}"] button.hit').click()
    assert second.value.status == 200, second.value.text()
    assert f"/images/{clicked['id']}/similar?" in second.value.url
    body2 = second.value.json()
    page.wait_for_function(SETTLED)
    assert rendered(page) == expected(body2)
    assert clicked["id"] not in {hit["id"] for hit in body2["results"]}  # itself left out
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
    page.locator("#results img").first.wait_for(state="attached")
    # the query image fills a phone's screen: the results' lazy thumbnails load once scrolled to
    page.locator("#results").scroll_into_view_if_needed()
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


def similar_url(response: Any) -> dict[str, list[str]]:
    from urllib.parse import parse_qs, urlparse
    return parse_qs(urlparse(response.url).query)


PAGE_TAG = "page-tag"


@pytest.fixture
def tagged(base_url: str) -> Iterator[list[int]]:
    """Three stored images holding PAGE_TAG (removed again afterwards: the server is shared)."""
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as client:
        ids = [r["id"] for r in client.get("/images", params={"limit": 8}).json()["images"]]
        chosen = [ids[0], ids[3], ids[6]]
        for image_id in chosen:
            response = client.patch(f"/images/{image_id}", json={"add_tags": [PAGE_TAG]})
            assert response.status_code == 200, response.text
        try:
            yield chosen
        finally:
            for image_id in chosen:
                client.patch(f"/images/{image_id}", json={"remove_tags": [PAGE_TAG]})


def is_listing(response: Any) -> bool:
    return "/images?" in response.url and response.request.method == "GET"


def test_gallery_box_filter_more_and_explanation(browser: Any, base_url: str,
                                                 tagged: list[int]) -> None:
    page, problems = open_page(browser, base_url, viewport={"width": 1280, "height": 1000})
    gallery = page.locator("#gallery > li")
    gallery.first.wait_for(state="visible")
    page.locator("#gallery-status").filter(has_text="image").wait_for()
    listing = page.request.get(f"{base_url}/images?limit=24").json()
    records = listing["images"]
    assert [int(li.get_attribute("data-id")) for li in gallery.all()] == \
        [r["id"] for r in records]
    assert page.locator("#gallery-more").is_visible() == (listing["next_cursor"] is not None)
    assert page.locator("#results > li").count() == 0  # nothing searched yet
    assert page.locator("#more").is_hidden() and page.locator("#boxer").is_hidden()
    tags = page.request.get(f"{base_url}/tags").json()["tags"]
    assert page.locator("#tag-filter").is_visible() == bool(tags)

    page.locator(f'#tags option[value="{PAGE_TAG}"]').wait_for(state="attached")
    with page.expect_response(is_listing) as by_tag:
        page.select_option("#tags", PAGE_TAG)
    assert by_tag.value.status == 200 and f"tag={PAGE_TAG}" in by_tag.value.url
    page.locator("#gallery-status").filter(has_text="3 images").wait_for()
    assert [int(li.get_attribute("data-id")) for li in gallery.all()] == tagged
    with page.expect_response(is_listing) as untagged:
        page.select_option("#tags", [])
    assert "tag=" not in untagged.value.url
    page.locator("#gallery-status").filter(has_text=f"{len(records)} images").wait_for()
    assert [int(li.get_attribute("data-id")) for li in gallery.all()] == \
        [r["id"] for r in records]

    chosen = int(records[1]["id"])
    with page.expect_response(is_similar) as first:
        page.locator(f'#gallery > li[data-id="{chosen}"] button.hit').click()
    assert first.value.status == 200 and f"/images/{chosen}/similar?" in first.value.url
    page.wait_for_function(SETTLED)
    assert rendered(page) == expected(first.value.json())
    assert page.locator("#gallery-section").is_hidden()

    image = page.locator("#query-full")
    image.wait_for(state="visible")
    page.wait_for_function("document.getElementById('query-full').naturalWidth > 0")
    box = image.bounding_box()
    assert box is not None
    natural = page.evaluate("[document.getElementById('query-full').naturalWidth, "
                            "document.getElementById('query-full').naturalHeight]")
    with page.expect_response(is_similar) as region:
        page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=5)
        page.mouse.up()
    assert region.value.status == 200, region.value.text()
    x1, y1, x2, y2 = map(int, similar_url(region.value)["bbox"][0].split(","))
    assert abs(x1 - 0.1 * natural[0]) <= 2 and abs(y1 - 0.2 * natural[1]) <= 2
    assert abs(x2 - 0.6 * natural[0]) <= 2 and abs(y2 - 0.7 * natural[1]) <= 2
    page.wait_for_function(SETTLED)
    assert rendered(page) == expected(region.value.json())
    assert page.locator("#box").is_visible()

    with page.expect_response(is_similar) as whole:
        page.locator("#clear-box").click()
    assert "bbox" not in similar_url(whole.value)
    folder = page.evaluate("[...document.getElementById('folder').options]"
                           ".map(o => o.value).filter(Boolean)")[0]
    with page.expect_response(is_similar) as filtered:
        page.select_option("#folder", folder)
    assert similar_url(filtered.value)["folder"] == [folder]
    page.wait_for_function(SETTLED)
    hits = filtered.value.json()["results"]
    assert hits and all(h["path"].startswith(f"{folder}/") for h in hits)
    assert rendered(page) == expected(filtered.value.json())

    with page.expect_response(is_similar) as unfiltered:
        page.select_option("#folder", "")
    with page.expect_response(is_similar) as six:
        page.select_option("#k", "6")
    page.wait_for_function(SETTLED)
    assert len(six.value.json()["results"]) == 6 and unfiltered.value.status == 200
    with page.expect_response(is_similar) as next_page:
        page.locator("#more").click()
    assert similar_url(next_page.value)["offset"] == ["6"]
    page.wait_for_function(SETTLED)
    both = six.value.json()["results"] + next_page.value.json()["results"]
    assert rendered(page) == expected({"results": both})

    with page.expect_response(lambda r: "/explain?" in r.url) as why:
        page.locator("#results > li .why").first.click()
    assert why.value.status == 200 and why.value.headers["content-type"] == "image/png"
    assert f"query_id={chosen}" in why.value.url
    page.locator("#explain").wait_for(state="visible")
    page.wait_for_function("document.getElementById('explain-img').naturalWidth > 0")
    page.locator("#explain-close").click()
    assert page.locator("#explain").is_hidden()
    page.locator("#browse").click()
    page.locator("#gallery > li").first.wait_for(state="visible")
    assert problems == []
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "page-gallery.png"), full_page=True)
