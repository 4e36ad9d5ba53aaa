"""Part "features": what each search feature costs per request.

Two halves:

* **requests**: the real app in this process (FastAPI's test client: routing, validation and the
  inference pool, no network) on an index of paris250 photographs (VGG16, seeded random weights,
  longer side 224, like the latency part), half of them tagged. Each request kind is timed
  ``REPEATS`` times after one warm-up; the median is reported, next to the plain search it
  extends (``POST /search`` by upload, ``GET /images/{id}/similar`` by id).
* **filters at scale**: an index of ``SCALE_N`` synthetic records (64-d, Flat) in 100 folders, one
  in ten tagged, on the FAISS+SQLite engine and on Milvus Lite: how long a filter's ids take, and
  a filtered search against the unfiltered one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from bench.plan import Plan
from bench.report import PartResult
from bench.shared import Missing, paris250, spread
from retrieval import create_collection, ingest
from retrieval.features import Embedder, EmbedderConfig
from retrieval.index import (
    IndexStore,
    KeepsTags,
    KnowsSources,
    Manifest,
    NewImage,
    RecordFilter,
    StoreSpec,
    TagEdit,
    create_index,
    folder_counts,
    matching_ids,
    search_hits,
    tag_counts,
)

__all__ = ["run"]

REPEATS = 5
SCALE_N = 100_000
MILVUS_N = 20_000
D = 64


def _median_ms(call: Callable[[], Any], repeats: int = REPEATS) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 2)


def _checked(response: Any) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.method} {response.request.url}: "
                           f"{response.status_code} {response.text[:200]}")
    return response


def _request_timings(client: Any, query: bytes, batch: list[bytes]) -> dict[str, float]:
    def post(path: str = "/search", **params: Any) -> Any:
        return _checked(client.post(path, files={"image": ("q.jpg", query)}, params=params))

    def get(path: str, **params: Any) -> Any:
        return _checked(client.get(path, params=params))

    files = [("images", (f"{i}.jpg", data)) for i, data in enumerate(batch)]
    auth = {"Authorization": "Bearer bench-key"}
    return {
        "search": _median_ms(lambda: post()),
        "search_bbox": _median_ms(lambda: post(bbox="20,20,180,140")),
        "search_offset_20": _median_ms(lambda: post(offset=20)),
        "search_min_score": _median_ms(lambda: post(min_score=0.5)),
        "search_folder": _median_ms(lambda: post(folder="eiffel_tower")),
        "search_tag": _median_ms(lambda: post(tag="even")),
        "similar": _median_ms(lambda: get("/images/1/similar")),
        "similar_tag": _median_ms(lambda: get("/images/1/similar", tag="even")),
        "similar_bbox": _median_ms(lambda: get("/images/1/similar", bbox="20,20,180,140")),
        f"batch_{len(batch)}": _median_ms(lambda: _checked(client.post("/search/batch",
                                                                         files=files))),
        f"one_by_one_{len(batch)}": _median_ms(lambda: [_checked(client.post(
            "/search", files={"image": ("q.jpg", b)})) for b in batch]),
        "images_page_100": _median_ms(lambda: get("/images", limit=100)),
        "images_page_tag": _median_ms(lambda: get("/images", limit=100, tag="even")),
        "folders": _median_ms(lambda: get("/folders")),
        "tags": _median_ms(lambda: get("/tags")),
        "patch_tags": _median_ms(lambda: _checked(client.patch(
            "/images/2", json={"add_tags": ["bench"]}, headers=auth))),
        "explain_json": _median_ms(lambda: get("/images/2/explain", query_id=1, format="json")),
        "explain_png": _median_ms(lambda: get("/images/2/explain", query_id=1)),
        "explain_upload": _median_ms(lambda: _checked(client.post(
            "/explain", files={"image": ("q.jpg", query)}, data={"id": "2"}))),
    }


def _requests(plan: Plan, photos: list[Path], tmp: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    config = EmbedderConfig(backbone="vgg16", weights="random", max_side=plan.index_side)
    embedder = Embedder.create(config)
    paths = spread(photos, plan.latency_index_images)
    collection = create_collection(tmp / "index", embedder, factory="Flat")
    try:
        index = collection.index
        assert isinstance(index, KeepsTags) and isinstance(index, KnowsSources)
        index.set_images_root(str(paths[0].parents[1]))
        ingest(collection, [(str(p), p) for p in paths])
        index.retag(index.ids_after(0, len(paths))[::2], TagEdit.of(add=["even"]))
    finally:
        collection.close()
    query = photos[-1].read_bytes()
    batch = [p.read_bytes() for p in spread(photos[1:], 8)]
    settings = Settings(index_dir=tmp / "index", api_key=SecretStr("bench-key"))
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 300
        while client.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the index did not load")
            time.sleep(0.1)
        timings = _request_timings(client, query, batch)
    return {"index_images": len(paths), "backbone": "vgg16 (seeded random weights)",
            "max_side": plan.index_side, "k": 10, "repeats": REPEATS, "median_ms": timings}


def _filled(spec: StoreSpec, path: Path, n: int) -> IndexStore:
    manifest = Manifest(backbone="vgg16", weights="random:seed=0", max_side=224, pooling="sum",
                        pooling_params={}, dim=D, faiss_factory="Flat")
    index = create_index(path, manifest, spec)
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, D)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    for start in range(0, n, 10_000):
        items = [NewImage(f"/p/f{i % 100:02d}/{i}.jpg", f"{i:064x}", 8, 8,
                          ("t",) if i % 10 == 0 else ())
                 for i in range(start, min(n, start + 10_000))]
        index.add(items, xb[start:start + len(items)])
    if isinstance(index, KnowsSources):
        index.set_images_root("/p")
    return index


def _filter_timings(index: IndexStore) -> dict[str, float]:
    xq = np.random.default_rng(1).standard_normal((1, D)).astype(np.float32)
    tag, folder = RecordFilter(tags=("t",)), RecordFilter(folder="f07")
    both = RecordFilter(folder="f07", tags=("t",))
    return {
        "ids_tag_10pct": _median_ms(lambda: matching_ids(index, tag)),
        "ids_folder_1pct": _median_ms(lambda: matching_ids(index, folder)),
        "ids_folder_and_tag": _median_ms(lambda: matching_ids(index, both)),
        "search_unfiltered": _median_ms(lambda: search_hits(index, xq, 10, qe_k=0)),
        "search_tag_10pct": _median_ms(lambda: search_hits(index, xq, 10, qe_k=0, where=tag)),
        "search_folder_1pct": _median_ms(lambda: search_hits(index, xq, 10, qe_k=0,
                                                             where=folder)),
        "tag_counts": _median_ms(lambda: tag_counts(index), 3),
        "folder_counts": _median_ms(lambda: folder_counts(index), 3),
    }


def _scale(tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _filled(StoreSpec(), tmp / "scale", SCALE_N) as index:
        out["faiss_sqlite"] = {"records": SCALE_N, "median_ms": _filter_timings(index)}
    try:
        import milvus_lite  # noqa: F401
    except ImportError:
        out["milvus_lite"] = "skipped: milvus-lite is not installed"
        return out
    spec = StoreSpec("milvus", str(tmp / "m.db"), f"bench_{uuid.uuid4().hex[:8]}")
    with _filled(spec, tmp / "milvus", MILVUS_N) as index:
        out["milvus_lite"] = {"records": MILVUS_N, "median_ms": _filter_timings(index)}
    return out


def run(plan: Plan) -> PartResult:
    result = PartResult("features", "what each search feature costs per request")
    try:
        photos = paris250()
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as tmp:
        result.figures["requests"] = _requests(plan, photos, Path(tmp))
        result.figures["filters"] = _scale(Path(tmp))
    ms = result.figures["requests"]["median_ms"]
    result.notes = [
        f"POST /search {ms['search']} ms; +bbox {ms['search_bbox']}, +tag {ms['search_tag']}, "
        f"+folder {ms['search_folder']}; /similar {ms['similar']} ms (+tag {ms['similar_tag']})",
        f"explain: {ms['explain_json']} ms (json), {ms['explain_png']} ms (png), "
        f"{ms['explain_upload']} ms (upload)",
    ]
    return result
