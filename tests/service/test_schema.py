"""schemathesis fuzzes every operation of ``/openapi.json``: no 5xx, and every response is
documented (status, content type, headers, body schema, ``Allow`` on 405), schema-invalid input is
refused. It runs on a server of its own with the API key, so the write routes are fuzzed too (and
its deletes touch no other test's index). Bounded: 10 examples per operation and phase.

Every check but ``positive_data_acceptance`` runs: the schema cannot say "bytes that decode as an
image", so schema-valid uploads are rightly refused with 400/415.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import API_KEY, ServerFactory

pytest.importorskip("schemathesis")


def test_openapi_documents_every_route(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/healthz", "/readyz", "/stats", "/metrics", "/search", "/images",
                          "/images/{image_id}", "/images/{image_id}/file", "/duplicates",
                          "/images/{image_id}/similar", "/search/batch", "/folders", "/tags",
                          "/images/{image_id}/explain", "/explain"}
    assert set(paths["/images/{image_id}"]) == {"get", "delete", "patch"}
    assert set(paths["/images"]) == {"get", "post"}
    error = {"$ref": "#/components/schemas/ErrorBody"}
    search = paths["/search"]["post"]["responses"]
    assert search["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SearchResponse"}
    for status in ("400", "413", "415", "422", "503"):
        assert search[status]["content"]["application/json"]["schema"] == error
    for operation in (paths["/images"]["post"], paths["/images/{image_id}"]["delete"],
                      paths["/images/{image_id}"]["patch"]):
        assert operation["responses"]["507"]["content"]["application/json"]["schema"] == error
    batch = paths["/search/batch"]["post"]["responses"]
    assert batch["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchResponse"}
    params = {p["name"] for p in paths["/search"]["post"]["parameters"]}
    filters = {"folder", "added_after", "added_before", "tag"}
    assert {"k", "offset", "min_score", "bbox", "qe", *filters} <= params
    similar = {p["name"] for p in paths["/images/{image_id}/similar"]["get"]["parameters"]}
    assert {"k", "offset", "min_score", "bbox", "qe", *filters} <= similar
    listing = {p["name"] for p in paths["/images"]["get"]["parameters"]}
    assert listing == {"cursor", "limit", *filters}
    upload = paths["/images"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(upload["schema"]["properties"]) == {"images", "tags", "folder"}
    assert upload["schema"]["properties"]["folder"]["type"] == "string"
    patch = paths["/images/{image_id}"]["patch"]["requestBody"]["content"]["application/json"]
    assert patch["schema"] == {"$ref": "#/components/schemas/ImagePatch"}
    for path in ("/images/{image_id}/explain", "/explain"):
        operation = next(iter(paths[path].values()))
        assert {"side", "format"} <= {p["name"] for p in operation["parameters"]}
        assert set(operation["responses"]["200"]["content"]) == {"image/png", "application/json"}
        for status in ("404", "422", "503"):
            assert operation["responses"][status]["content"]["application/json"]["schema"] == error
    for path, model in (("/folders", "FoldersResponse"), ("/tags", "TagsResponse")):
        assert paths[path]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"] == {"$ref": f"#/components/schemas/{model}"}
    assert client.get("/docs").status_code == 200
    components = set(schema["components"]["schemas"])
    assert {ref.rsplit("/", 1)[-1] for ref in _refs(schema)} <= components  # none dangles


def _params(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation["parameters"]}


def _form(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """The properties of ``operation``'s multipart body (its component resolved)."""
    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    properties: dict[str, Any] = schema["components"]["schemas"][name]["properties"]
    return properties


def test_openapi_documents_every_parameter(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    batch = paths["/search/batch"]["post"]
    params = _params(batch)
    assert set(params) == {"k", "qe", "offset", "min_score", "diffusion", "folder", "tag",
                           "added_after", "added_before"}  # no bbox: one box fits no batch
    assert all(p["in"] == "query" for p in params.values())
    assert params["tag"]["schema"]["anyOf"][0]["type"] == "array"  # repeatable
    assert params["offset"]["schema"]["minimum"] == 0
    assert params["min_score"]["schema"]["anyOf"][0]["type"] == "number"
    for name in ("added_after", "added_before"):
        assert params[name]["schema"]["anyOf"][0]["type"] == "number"
    assert params["folder"]["schema"]["anyOf"][0]["type"] == "string"
    form = _form(schema, batch)
    assert set(form) == {"images", "k"} and form["images"]["type"] == "array"
    explain = _params(paths["/images/{image_id}/explain"]["get"])
    assert set(explain) == {"image_id", "query_id", "side", "format"}
    assert explain["query_id"]["in"] == "query" and explain["query_id"]["required"] is True
    assert explain["query_id"]["schema"]["type"] == "integer"
    upload_explain = paths["/explain"]["post"]
    assert set(_params(upload_explain)) == {"side", "format"}
    form = _form(schema, upload_explain)
    assert set(form) == {"image", "id"} and form["id"]["type"] == "integer"
    assert set(components[upload_explain["requestBody"]["content"]["multipart/form-data"][
        "schema"]["$ref"].rsplit("/", 1)[-1]]["required"]) == {"image", "id"}
    patch = components["ImagePatch"]
    assert set(patch["properties"]) == {"tags", "add_tags", "remove_tags"}
    assert patch["additionalProperties"] is False  # an unknown field (folder) is a 422
    for name in ("add_tags", "remove_tags"):
        assert patch["properties"][name]["type"] == "array"
        assert patch["properties"][name]["items"]["maxLength"] == 64
    assert patch["properties"]["tags"]["anyOf"][1] == {"type": "null"}  # null: unchanged
    for model in ("ImageOut", "SearchHit", "AddedImage"):
        folder = components[model]["properties"]["folder"]
        assert folder["anyOf"] == [{"type": "string"}, {"type": "null"}]


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server()
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None
    result = subprocess.run(
        [cli, "run", f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {API_KEY}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", "10", "--phases", "examples,coverage,fuzzing,stateful", "--seed", "1",
         "--no-shrink", "--workers", "1", "--request-timeout", "30",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "❌" not in result.stdout
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
