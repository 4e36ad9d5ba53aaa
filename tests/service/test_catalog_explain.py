"""Tags, folders and explanations through the real app (in process, on a copy of the session's
SUM index): PATCH edits tags without re-embedding, the tag filter equals the unfiltered ranking
restricted to the tagged images, uploads take tags, /folders and /tags count what the records
say, and an explanation's grid sums to the score the search reports."""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import API_KEY, AUTH, copy_index, jpeg


@pytest.fixture(scope="module")
def app(base_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("catalog")
    index = copy_index(base_index, root / "index")
    settings = Settings(index_dir=index, absolute_paths=True, api_key=API_KEY,
                        data_dir=root / "uploads")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the index did not load"
            time.sleep(0.1)
        yield client


def ranking(app: TestClient, image_id: int, **params: Any) -> list[tuple[int, float]]:
    response = app.get(f"/images/{image_id}/similar", params={"k": 11, **params})
    assert response.status_code == 200, response.text
    return [(h["id"], h["score"]) for h in response.json()["results"]]


def patch(app: TestClient, image_id: int, body: dict[str, Any], status: int = 200) -> Any:
    response = app.patch(f"/images/{image_id}", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    return response.json()


def test_patch_edits_tags_and_the_filter_follows(app: TestClient) -> None:
    before = ranking(app, 1)
    assert patch(app, 2, {"add_tags": ["sea", "red"]})["tags"] == ["red", "sea"]
    patch(app, 3, {"add_tags": ["sea"]})
    patch(app, 4, {"tags": ["sea", "old"]})
    assert patch(app, 4, {"remove_tags": ["old"]})["tags"] == ["sea"]
    assert app.get("/images/2").json()["tags"] == ["red", "sea"]
    assert ranking(app, 1) == before  # metadata only: the same ranking
    tagged = ranking(app, 1, tag="sea")
    want = [(i, s) for i, s in before if i in {2, 3, 4}]
    assert [i for i, _ in tagged] == [i for i, _ in want]  # exact search among the tagged
    assert [s for _, s in tagged] == pytest.approx([s for _, s in want], abs=1e-5)
    both = ranking(app, 1, tag=["sea", "red"])
    assert [i for i, _ in both] == [2]
    data = Path(app.get("/images/1").json()["path"]).read_bytes()
    every = app.post("/search", files={"image": ("q", data)}, params={"k": 12}).json()
    only = app.post("/search", files={"image": ("q", data)}, params={"tag": "sea"}).json()
    want = [h["id"] for h in every["results"] if h["id"] in {2, 3, 4}]
    assert [h["id"] for h in only["results"]] == want
    batch = app.post("/search/batch", files=[("images", ("q", data))], params={"tag": "sea"})
    assert [h["id"] for h in batch.json()["queries"][0]["results"]] == want
    assert tagged[0][0] in {h["id"] for h in ranking_hits(app, 1, "sea")}
    page = app.get("/images", params={"tag": "sea", "limit": 2}).json()
    assert [r["id"] for r in page["images"]] == [2, 3] and page["next_cursor"] == 3
    tags = app.get("/tags").json()["tags"]
    assert {t["tag"]: t["images"] for t in tags}["sea"] == 3
    patch(app, 2, {"tags": []})
    patch(app, 3, {"tags": []})
    patch(app, 4, {"tags": []})


def ranking_hits(app: TestClient, image_id: int, tag: str) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = app.get(f"/images/{image_id}/similar",
                                         params={"tag": tag}).json()["results"]
    assert all(tag in h["tags"] for h in hits)
    return hits


@pytest.mark.parametrize(("body", "status", "where"), [
    ({"add_tags": ["a,b"]}, 422, "add_tags"),
    ({"add_tags": [""]}, 422, "add_tags"),
    ({"tags": ["a"], "add_tags": ["b"]}, 422, "not both"),
    ({"add_tags": ["a"], "remove_tags": ["a"]}, 422, "both added and removed"),
    ({"folder": "x"}, 422, "folder"),
])
def test_bad_patches(app: TestClient, body: dict[str, Any], status: int, where: str) -> None:
    response = app.patch("/images/1", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert where in response.text
    assert app.get("/images/1").json()["tags"] == []


def test_patch_needs_the_key_and_a_stored_image(app: TestClient) -> None:
    assert app.patch("/images/1", json={"add_tags": ["a"]}).status_code == 401
    assert patch(app, 999, {"add_tags": ["a"]}, 404)["error"] == "not_found"
    assert app.get("/images", params={"tag": "a,b"}).status_code == 422


def test_uploads_take_tags(app: TestClient) -> None:
    data = jpeg(901)
    response = app.post("/images", files=[("images", ("n.jpg", data))], headers=AUTH,
                        data={"tags": ["beach, summer", "2026"]})
    assert response.status_code == 201, response.text
    added = response.json()["added"][0]
    assert added["tags"] == ["2026", "beach", "summer"]
    again = app.post("/images", files=[("images", ("n.jpg", data))], headers=AUTH,
                     data={"tags": "holiday"}).json()["added"][0]
    assert again["duplicate"] and again["tags"] == ["2026", "beach", "holiday", "summer"]
    bad = app.post("/images", files=[("images", ("m.jpg", jpeg(902)))], headers=AUTH,
                   data={"tags": "x" * 65})
    assert bad.status_code == 422
    hits = app.get(f"/images/{added['id']}/similar", params={"tag": "holiday"}).json()
    assert hits["results"] == []  # only itself holds it, and it is left out
    assert app.delete(f"/images/{added['id']}", headers=AUTH).status_code == 200


def test_folders_count_the_records(app: TestClient, image_folder: Path) -> None:
    uploads = app.post("/images", files=[("images", ("u.jpg", jpeg(905)))], headers=AUTH,
                       data={"folder": "up/deep"}).json()["added"][0]
    body = app.get("/folders").json()
    records = app.get("/images", params={"limit": 1000}).json()["images"]
    roots = (image_folder, Path(uploads["path"]).parents[2])
    direct = Counter(PurePosixPath(r["path"]).parent.relative_to(root).as_posix()
                     for r in records for root in roots if r["path"].startswith(f"{root}/"))
    assert direct["up/deep"] == 1 and all(r["folder"] is not None for r in records)
    assert Counter("." if r["folder"] == "" else r["folder"] for r in records) == direct
    table = {f["folder"]: (f["images"], f["under"]) for f in body["folders"]}
    assert table == {".": (0, sum(direct.values())), "up": (0, 1),
                     **{name: (n, n) for name, n in direct.items()}}
    assert body["elsewhere"] == len(records) - sum(direct.values()) == 0
    for name, (_, under) in table.items():
        page = app.get("/images", params={"folder": name, "limit": 1000}).json()
        assert len(page["images"]) == under
    assert app.delete(f"/images/{uploads['id']}", headers=AUTH).status_code == 200


# -- explanations ---------------------------------------------------------------------------


def explain(app: TestClient, image_id: int, **params: Any) -> dict[str, Any]:
    response = app.get(f"/images/{image_id}/explain", params={"format": "json", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("side", ["stored", "query"])
def test_explanation_sums_to_the_search_score(app: TestClient, side: str) -> None:
    scores = dict(ranking(app, 5, qe=0))
    for hit in (3, 8):
        body = explain(app, hit, query_id=5, side=side)
        grid = np.asarray(body["grid"])
        assert body["pooling"] == "sum" and body["kind"] == "linear"
        assert float(grid.sum()) == pytest.approx(body["similarity"], abs=1e-5)
        assert body["similarity"] == pytest.approx(scores[hit], abs=1e-5)
        assert body["top_cells"] and all(0 <= i < grid.shape[0] and 0 <= j < grid.shape[1]
                                         for i, j in body["top_cells"])


def test_explanation_png_and_upload(app: TestClient) -> None:
    response = app.get("/images/3/explain", params={"query_id": 5})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    record = app.get("/images/3").json()
    assert Image.open(io.BytesIO(response.content)).size == (record["width"], record["height"])
    data = Path(app.get("/images/5").json()["path"]).read_bytes()
    found = app.post("/search", files={"image": ("q", data)}, params={"k": 12, "qe": 0}).json()
    score = {h["id"]: h["score"] for h in found["results"]}[3]
    for side in ("stored", "query"):
        body = app.post("/explain", files={"image": ("q", data)}, data={"id": "3"},
                        params={"format": "json", "side": side}).json()
        assert body["similarity"] == pytest.approx(score, abs=1e-5)
        assert body["query_id"] is None
    png = app.post("/explain", files={"image": ("q", data)}, data={"id": "3"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


@pytest.mark.parametrize(("url", "params", "status"), [
    ("/images/999/explain", {"query_id": 5}, 404),
    ("/images/3/explain", {"query_id": 999}, 404),
    ("/images/3/explain", {}, 422),
    ("/images/3/explain", {"query_id": 5, "side": "left"}, 422),
    ("/images/3/explain", {"query_id": 5, "format": "gif"}, 422),
])
def test_bad_explanations(app: TestClient, url: str, params: dict[str, Any],
                          status: int) -> None:
    assert app.get(url, params=params).status_code == status
    assert app.post("/explain", files={"image": ("q", b"not an image")},
                    data={"id": "3"}).status_code == 415  # not an image format
    assert app.post("/explain", files={"image": ("q", jpeg(1))}).status_code == 422


def test_uploads_take_a_folder(app: TestClient, image_folder: Path) -> None:
    data = jpeg(903)
    response = app.post("/images", files=[("images", ("f.jpg", data))], headers=AUTH,
                        data={"folder": "trips/./2024/"})
    assert response.status_code == 201, response.text
    added = response.json()["added"][0]
    assert added["folder"] == "trips/2024"
    path = Path(added["path"])  # stored under that sub-folder of the uploads folder
    assert path.parent.name == "2024" and path.parent.parent.name == "trips"
    assert path.parent.parent.parent.name == "uploads" and path.is_file()
    assert app.get(f"/images/{added['id']}").json()["folder"] == "trips/2024"
    try:
        for folder in ("trips", "trips/2024"):
            hits = app.post("/search", files={"image": ("q", data)},
                            params={"folder": folder}).json()["results"]
            assert [(h["id"], h["folder"]) for h in hits] == [(added["id"], "trips/2024")]
            page = app.get("/images", params={"folder": folder}).json()["images"]
            assert [r["id"] for r in page] == [added["id"]]
        assert app.post("/search", files={"image": ("q", data)},
                        params={"folder": "trip"}).json()["results"] == []
        every = app.post("/search", files={"image": ("q", data)}, params={"k": 3}).json()
        top = every["results"]
        assert top[0]["id"] == added["id"]
        for hit in top[1:]:  # an indexed image: its directory under the indexed folder
            want = PurePosixPath(hit["path"]).parent.relative_to(image_folder).as_posix()
            assert hit["folder"] == ("" if want == "." else want)
        table = {f["folder"]: (f["images"], f["under"]) for f in app.get("/folders").json()[
            "folders"]}
        assert table["trips"] == (0, 1) and table["trips/2024"] == (1, 1)
        again = app.post("/images", files=[("images", ("f.jpg", data))], headers=AUTH,
                         data={"folder": "elsewhere"}).json()["added"][0]
        assert again["duplicate"] and again["folder"] == "trips/2024"  # it keeps its folder
    finally:
        assert app.delete(f"/images/{added['id']}", headers=AUTH).status_code == 200
    assert "trips" not in {f["folder"] for f in app.get("/folders").json()["folders"]}


@pytest.mark.parametrize(("folder", "words"), [
    ("../up", "must not contain '..'"),
    ("a/../../b", "must not contain '..'"),
    ("/etc", "must be relative"),
    ("tab\there", "control characters"),
    ("x" * 1001, "at most 1000 characters"),
    (["a", "b"], "one valid string"),
])
def test_bad_upload_folders(app: TestClient, folder: str | list[str], words: str) -> None:
    before = app.get("/stats").json()["count"]
    response = app.post("/images", files=[("images", ("b.jpg", jpeg(904)))], headers=AUTH,
                        data={"folder": folder})
    assert response.status_code == 422, response.text
    assert words in response.text
    assert app.get("/stats").json()["count"] == before
