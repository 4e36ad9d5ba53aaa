"""Region queries, windows (offset, min_score), collection pages and batch queries, in process: the
real app (lifespan and all) on a copy of the session's index, through FastAPI's test client."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import copy_index


def indexed_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("img*") if p.is_file())


@pytest.fixture(scope="module")
def app(base_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    index = copy_index(base_index, tmp_path_factory.mktemp("features") / "index")
    with TestClient(create_app(Settings(index_dir=index, absolute_paths=True))) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the index did not load"
            time.sleep(0.1)
        yield client


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pairs(body: dict[str, Any]) -> list[tuple[int, float]]:
    return [(h["id"], h["score"]) for h in body["results"]]


def search(app: TestClient, data: bytes, **params: Any) -> dict[str, Any]:
    response = app.post("/search", files={"image": ("q.png", data)}, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def assert_422(response: Any, where: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and where in str(body["detail"])


# -- windows ------------------------------------------------------------------------------------

def test_offset_is_the_tail_of_the_longer_search(app: TestClient, image_folder: Path) -> None:
    data = indexed_files(image_folder)[0].read_bytes()
    longer = pairs(search(app, data, k=9))
    assert pairs(search(app, data, k=5, offset=4)) == longer[4:]
    similar = app.get("/images/3/similar", params={"k": 9}).json()
    tail = app.get("/images/3/similar", params={"k": 4, "offset": 5}).json()
    assert pairs(tail) == pairs(similar)[5:]


def test_min_score_drops_the_hits_below(app: TestClient, image_folder: Path) -> None:
    data = indexed_files(image_folder)[1].read_bytes()
    every = pairs(search(app, data, k=12))
    threshold = every[5][1]
    assert pairs(search(app, data, k=12, min_score=threshold)) == \
        [(i, s) for i, s in every if s >= threshold]
    similar = app.get("/images/2/similar", params={"k": 11, "min_score": threshold}).json()
    assert all(s >= threshold for _, s in pairs(similar))


@pytest.mark.parametrize("params", [{"offset": -1}, {"offset": 996, "k": 5}, {"min_score": "nan"},
                                    {"min_score": "x"}, {"k": 0}])
def test_bad_windows_are_422(app: TestClient, params: dict[str, Any]) -> None:
    where = next(iter(params)) if "min_score" in params or params.get("k") == 0 else "offset"
    assert_422(app.get("/images/1/similar", params=params), where)
    assert_422(app.post("/search", files={"image": ("q", b"x")}, params=params), where)


def test_depth_bound_is_offset_plus_k(app: TestClient) -> None:
    assert app.get("/images/1/similar", params={"k": 100, "offset": 900}).status_code == 200
    response = app.get("/images/1/similar", params={"k": 100, "offset": 901})
    assert_422(response, "offset + k should be less than or equal to 1000")


# -- pages --------------------------------------------------------------------------------------

def test_pages_are_slices_of_the_collection(app: TestClient) -> None:
    whole = app.get("/images", params={"limit": 1000}).json()
    assert whole["next_cursor"] is None and len(whole["images"]) == 12
    ids = [r["id"] for r in whole["images"]]
    assert ids == sorted(ids)
    paged, cursor = [], 0
    while cursor is not None:
        page = app.get("/images", params={"cursor": cursor, "limit": 5}).json()
        paged.extend(page["images"])
        cursor = page["next_cursor"]
        assert cursor is None or cursor == page["images"][-1]["id"]
    assert paged == whole["images"]
    assert app.get("/images", params={"cursor": ids[-1]}).json() == {"images": [],
                                                                      "next_cursor": None}
    assert app.get(f"/images/{ids[0]}").json() == whole["images"][0]


def test_filtered_pages(app: TestClient, image_folder: Path) -> None:
    whole = app.get("/images", params={"limit": 1000}).json()["images"]
    group = [r for r in whole if f"{image_folder}/group0/" in r["path"]]
    paged, cursor = [], 0
    while cursor is not None:
        page = app.get("/images", params={"cursor": cursor, "limit": 3,
                                          "folder": "group0"}).json()
        paged.extend(page["images"])
        cursor = page["next_cursor"]
    assert paged == group and len(group) == 4
    later = app.get("/images", params={"added_after": whole[0]["added_at"] + 1e6}).json()
    assert later == {"images": [], "next_cursor": None}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"cursor": -1},
                                    {"cursor": "a"}])
def test_bad_pages_are_422(app: TestClient, params: dict[str, Any]) -> None:
    assert_422(app.get("/images", params=params), next(iter(params)))


# -- batch --------------------------------------------------------------------------------------

def test_batch_equals_one_by_one(app: TestClient, image_folder: Path) -> None:
    files = indexed_files(image_folder)[:5]
    broken = (image_folder / "group0" / "broken.jpg").read_bytes()
    uploads = [("images", (p.name, p.read_bytes())) for p in files[:2]]
    uploads += [("images", ("broken.jpg", broken))]
    uploads += [("images", (p.name, p.read_bytes())) for p in files[2:]]
    response = app.post("/search/batch", files=uploads, params={"k": 4, "offset": 1})
    assert response.status_code == 200, response.text
    queries = response.json()["queries"]
    assert [q["name"] for q in queries] == [u[1][0] for u in uploads]
    singles = [files[0], files[1], None, *files[2:]]
    for query, path in zip(queries, singles, strict=True):
        if path is None:
            alone = app.post("/search", files={"image": ("broken.jpg", broken)})
            assert (query["status"], query["error"]) == (alone.status_code, "invalid_image")
            assert query["detail"] == alone.json()["detail"] and query["results"] is None
            continue
        assert query["error"] is None
        assert_same(pairs(query), pairs(search(app, path.read_bytes(), k=4, offset=1)))


def test_batch_bounds(app: TestClient) -> None:
    too_many = [("images", (f"{i}.jpg", b"x")) for i in range(65)]
    assert_422(app.post("/search/batch", files=too_many), "at most 64 images")
    assert_422(app.post("/search/batch", data={"k": "1"}, files={"x": ("a", b"b")}), "images")
    assert_422(app.post("/search/batch", files=[("images", ("a", b"b"))],
                        params={"k": 101}), "k")


# -- regions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("as_form", [False, True])
def test_bbox_equals_the_precropped_file(app: TestClient, image_folder: Path,
                                         as_form: bool) -> None:
    for path in indexed_files(image_folder)[:3]:
        image = Image.open(path).convert("RGB")
        box = (7, 5, image.width - 9, image.height // 2 + 3)
        text = ",".join(map(str, box))
        cropped = search(app, png(image.crop(box)), k=6)
        if as_form:
            response = app.post("/search", files={"image": ("q.png", png(image))},
                                data={"bbox": text, "k": "6"})
            got = response.json()
        else:
            got = search(app, png(image), k=6, bbox=text)
        assert_same(pairs(got), pairs(cropped))
        whole = search(app, png(image), k=6)
        assert pairs(whole) != pairs(got)


def test_similar_bbox_is_the_stored_files_region(app: TestClient) -> None:
    record = app.get("/images/5").json()
    image = Image.open(record["path"]).convert("RGB")
    box = (3, 4, image.width // 2, image.height - 2)
    got = app.get("/images/5/similar", params={"k": 5, "bbox": ",".join(map(str, box))}).json()
    cropped = pairs(search(app, png(image.crop(box)), k=6))
    assert_same(pairs(got), [(i, s) for i, s in cropped if i != 5][:5])


@pytest.mark.parametrize(("bbox", "reason"), [
    ("0,0,10000,10", "outside"), ("5,5,5,20", "empty or inverted"),
    ("20,5,10,20", "empty or inverted"), ("1,2,3", "bbox"), ("1.5,2,3,4", "bbox")])
def test_bad_boxes_are_422(app: TestClient, image_folder: Path, bbox: str, reason: str) -> None:
    data = indexed_files(image_folder)[0].read_bytes()
    assert_422(app.post("/search", files={"image": ("q.jpg", data)}, params={"bbox": bbox}),
               reason)
    assert_422(app.get("/images/1/similar", params={"bbox": bbox}), reason)


# -- filters ------------------------------------------------------------------------------------

def test_folder_and_time_filters(app: TestClient, image_folder: Path) -> None:
    data = indexed_files(image_folder)[0].read_bytes()
    every = search(app, data, k=12)["results"]
    under = [h for h in every if f"{image_folder}/group1/" in h["path"]]
    got = search(app, data, k=12, folder="group1")["results"]
    assert_same([(h["id"], h["score"]) for h in got], [(h["id"], h["score"]) for h in under])
    assert len(got) == 4
    assert len(search(app, data, k=2, folder="group1")["results"]) == 2
    similar = app.get("/images/1/similar", params={"k": 12, "folder": "group2"}).json()
    assert {h["path"].split("/")[-2] for h in similar["results"]} == {"group2"}
    added = app.get("/images/1").json()["added_at"]
    assert len(search(app, data, k=12, added_after=added)["results"]) == 12
    assert search(app, data, k=12, added_before=added)["results"] == []


@pytest.mark.parametrize(("params", "where"), [
    ({"folder": "/etc"}, "folder"), ({"folder": "a/../.."}, ".."),
    ({"added_after": "x"}, "added_after"), ({"added_after": 5, "added_before": 5}, "later")])
def test_bad_filters_are_422(app: TestClient, params: dict[str, Any], where: str) -> None:
    assert_422(app.get("/images/1/similar", params=params), where)
