"""Plain route logic in process (app factory + dependency overrides, no server, no model):
validation, auth, readiness, metrics. Durability, overload and limits stay on real servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.deps import get_collection
from service.paths import PathView
from service.settings import Settings

KEY = "in-process-key"


@pytest.fixture()
def app_client(tmp_path: Path) -> TestClient:
    """The app without its lifespan: nothing is loaded, so the index routes answer 503."""
    return TestClient(create_app(Settings(index_dir=tmp_path, api_key=KEY)))


def test_not_ready_until_loaded(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    ready = app_client.get("/readyz")
    assert (ready.status_code, ready.json()["error"]) == (503, "not_ready")
    assert ready.headers["retry-after"] == "1"


@pytest.mark.parametrize("image_id", ["+1", "01", "1_0", "0", " 1"])
def test_ids_are_strict_decimals(tmp_path: Path, image_id: str) -> None:
    app = create_app(Settings(index_dir=tmp_path, api_key=KEY))
    app.dependency_overrides[get_collection] = lambda: None  # ids are refused before any lookup
    response = TestClient(app).get(f"/images/{image_id}")
    assert (response.status_code, response.json()["error"]) == (422, "validation_error")


def test_writes_need_the_key(app_client: TestClient) -> None:
    response = app_client.delete("/images/1", headers={"Authorization": "Bearer nope"})
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
    readonly = TestClient(create_app(Settings(index_dir=Path("/nonexistent"))))
    response = readonly.delete("/images/1", headers={"Authorization": f"Bearer {KEY}"})
    assert (response.status_code, response.json()["error"]) == (403, "writes_disabled")


def test_metrics_use_the_official_client(app_client: TestClient) -> None:
    app_client.get("/healthz")
    text = app_client.get("/metrics").text
    assert 'cbir_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "# TYPE cbir_http_request_duration_seconds histogram" in text
    assert "cbir_ready 0.0" in text
    assert "process_cpu_seconds_total" in text and "python_info" in text


def test_paths_are_shown_relative() -> None:
    view = PathView("/srv/index/data", "/photos")
    assert view.show("/srv/index/data/ab.jpg") == "ab.jpg"
    assert view.show("/photos/2024/x.jpg") == "2024/x.jpg"
    assert view.show("/elsewhere/y.png") == "y.png"
    assert PathView("/d", "/p", absolute=True).show("/p/x.jpg") == "/p/x.jpg"
