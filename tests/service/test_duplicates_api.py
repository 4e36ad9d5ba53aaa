"""``GET /duplicates`` (pages, bounds, validation) and ``POST /images?report_duplicates=true``."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from indexer.duplicates import find_groups
from retrieval.index import DuplicateRule, ImageIndex
from tests.service.conftest import AUTH, Server, ServerFactory


@pytest.fixture(scope="module")
def server(module_server: ServerFactory) -> Server:
    return module_server()


def all_pages(client: httpx.Client, **params: float) -> list[list[int]]:
    groups, cursor = [], 0
    for _ in range(100):
        body = client.get("/duplicates", params={**params, "cursor": cursor}).json()
        assert len(body["groups"]) <= params.get("limit", 20)
        groups += [[m["id"] for m in g["members"]] for g in body["groups"]]
        if body["next_cursor"] is None:
            return groups
        assert body["next_cursor"] > cursor
        cursor = body["next_cursor"]
    raise AssertionError("pagination did not end")


def library_groups(index_dir: Path, rule: DuplicateRule) -> list[set[int]]:
    with ImageIndex.open(index_dir, read_only=True) as index:
        return sorted((set(g.members) for g in find_groups(index, rule)), key=min)


def test_upload_reports_its_duplicates_then_pages_list_them(
        server: Server, image_folder: Path) -> None:
    original = next(image_folder.rglob("img01.png"))
    with server.client() as client:
        plain = client.post("/images", files=[("images", ("x.png", b"", "image/png"))],
                            headers=AUTH)
        assert plain.status_code == 400  # (an empty file: nothing added)
        copy = io.BytesIO()  # the same pixels in other bytes: a new record, a perfect duplicate
        Image.open(original).save(copy, format="PNG", compress_level=1)
        assert copy.getvalue() != original.read_bytes()
        response = client.post("/images?report_duplicates=true", headers=AUTH, files=[
            ("images", ("copy.png", copy.getvalue(), "image/png"))])
        assert response.status_code == 201, response.text
        body = response.json()
        (new,) = body["added"]
        (found,) = body["duplicates"]
        match = next(d for d in found if d["path"] == "group1/img01.png")
        assert match["score"] == pytest.approx(1.0, abs=1e-3)
        assert match["url"] == f"/images/{match['id']}/file"
        assert all(d["id"] != new["id"] for d in found)
        again = client.post("/images", headers=AUTH, files=[
            ("images", ("c2.png", original.read_bytes(), "image/png"))]).json()
        assert again["duplicates"] is None
        for limit in (1, 3, 100):
            groups = all_pages(client, limit=limit)
            assert sorted(map(set, groups), key=min) == \
                library_groups(server.index, DuplicateRule())
        assert any({new["id"], match["id"]} <= set(g) for g in groups)
        strict = all_pages(client, threshold=0.99, layout_threshold=0.999)
        assert sorted(map(set, strict), key=min) == \
            library_groups(server.index, DuplicateRule(0.99, 0.999))


@pytest.mark.parametrize("query", ["threshold=1.5", "layout_threshold=-3", "limit=0",
                                   "limit=101", "cursor=-1", "threshold=abc"])
def test_bad_parameters_are_422(server: Server, query: str) -> None:
    with server.client() as client:
        response = client.get(f"/duplicates?{query}")
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_page_fields(server: Server) -> None:
    with server.client() as client:
        body = client.get("/duplicates?limit=1").json()
    assert set(body) == {"groups", "next_cursor", "scanned", "threshold", "layout_threshold"}
    assert body["threshold"] == 0.8 and body["layout_threshold"] == 0.85
    for group in body["groups"]:
        scores = [m["score"] for m in group["members"]]
        assert group["score"] == max(scores)
