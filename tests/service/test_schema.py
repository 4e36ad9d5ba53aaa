"""schemathesis fuzzes every operation of ``/openapi.json`` on the live server: no 5xx, and every
response is documented (status, content type, body schema). Bounded: 10 examples per operation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Server

pytest.importorskip("schemathesis")

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


def test_openapi_documents_every_route(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/healthz", "/readyz", "/stats", "/metrics", "/search", "/images",
                          "/images/{image_id}", "/images/{image_id}/file"}
    assert set(paths["/images/{image_id}"]) == {"get", "delete"}
    error = {"$ref": "#/components/schemas/ErrorBody"}
    search = paths["/search"]["post"]["responses"]
    assert search["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SearchResponse"}
    for status in ("400", "413", "415", "422", "503"):
        assert search[status]["content"]["application/json"]["schema"] == error
    assert client.get("/docs").status_code == 200


def test_schemathesis_finds_no_server_errors(live: Server, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None
    result = subprocess.run(
        [cli, "run", f"{live.url}/openapi.json", "--checks", CHECKS, "--max-examples", "10",
         "--phases", "coverage,fuzzing", "--seed", "1", "--no-shrink", "--workers", "1",
         "--request-timeout", "30", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    with live.client() as client:
        assert client.get("/healthz").status_code == 200
