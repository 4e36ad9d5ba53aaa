"""Part "watch": file saved -> searchable, through ``cbir index watch`` and a keyless server.

A small index (paris250 photographs, VGG16 with seeded random weights, longer side 224, like
parts 1 to 3) is followed by ``cbir index watch`` (default debounce) and served by a keyless
``python -m service`` (read-only, following the store every ``CBIR_FOLLOW_INTERVAL_S``), both in
subprocesses. Photos not in the index are then saved into the folder one at a time (written
beside it and renamed in, as a camera upload or a sync tool does); for each, the time until the
server counts it (``GET /stats``: committed to the store) and until a search with the photo finds
it first (``POST /search``: in the FAISS index the server follows). Then each is moved to another
folder: the time until the search names the new path (re-pointed, nothing embedded).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.latency import build_index
from bench.plan import Plan
from bench.report import PartResult
from bench.server import Service
from bench.shared import REPO, Missing, paris250, spread
from retrieval.features import Embedder, EmbedderConfig
from retrieval.index import ImageIndex

__all__ = ["run"]

ARRIVALS = 6
FOLLOW_INTERVAL_S = 1.0
TIMEOUT_S = 120.0


def _until(check: Callable[[], bool], since: float) -> float:
    while not check():
        if time.monotonic() - since > TIMEOUT_S:
            raise RuntimeError(f"not seen within {TIMEOUT_S:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - since


def _top_path(client: httpx.Client, payload: bytes) -> str:
    response = client.post("/search", files={"image": ("q.jpg", payload)}, params={"k": 1})
    response.raise_for_status()
    results = response.json()["results"]
    return str(results[0]["path"]) if results else ""


def _save(source: Path, target: Path) -> float:
    """Copy ``source`` in as ``target`` (beside it, then renamed): the moment it is whole."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)
    return time.monotonic()


def _watcher(images: Path, index: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "indexer", "index", "watch", "--images",
                                 str(images), "--index", str(index)], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=dict(os.environ))
    _until(lambda: "watching " in log.read_text(errors="replace"), time.monotonic())
    return proc


def _measure(client: httpx.Client, images: Path, arrivals: list[Path]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"stored_s": [], "searchable_s": [], "moved_s": []}
    count = int(client.get("/stats").json()["count"])
    for photo in arrivals:
        payload = photo.read_bytes()
        saved = _save(photo, images / photo.name)
        count += 1
        out["stored_s"].append(_until(_counted(client, count), saved))
        out["searchable_s"].append(_until(_found(client, payload, photo.name), saved))
    (images / "moved").mkdir()
    for photo in arrivals:
        (images / photo.name).rename(images / "moved" / photo.name)
        moved = time.monotonic()
        out["moved_s"].append(_until(_found(client, photo.read_bytes(), f"moved/{photo.name}"),
                                     moved))
    return out


def _counted(client: httpx.Client, count: int) -> Callable[[], bool]:
    return lambda: int(client.get("/stats").json()["count"]) == count


def _found(client: httpx.Client, payload: bytes, path: str) -> Callable[[], bool]:
    return lambda: _top_path(client, payload) == path


def run(plan: Plan) -> PartResult:
    result = PartResult("watch", "file saved -> searchable: cbir index watch + a keyless server")
    try:
        photos = paris250()
    except Missing as exc:
        result.status, result.reason = "skipped", str(exc)
        return result
    n = plan.latency_index_images
    indexed, arrivals = spread(photos, n), spread(photos[1::2], ARRIVALS + n)[-ARRIVALS:]
    arrivals = [p for p in arrivals if p not in indexed][:ARRIVALS]
    embedder = Embedder.create(EmbedderConfig(backbone="vgg16", weights="random",
                                              max_side=plan.index_side))
    with tempfile.TemporaryDirectory(prefix="cbir-bench-") as tmp:
        images = Path(tmp) / "photos"
        images.mkdir()
        for p in indexed:
            shutil.copyfile(p, images / p.name)
        index = Path(tmp) / "index"
        build_index(embedder, sorted(p.resolve() for p in images.iterdir()), index)
        with ImageIndex.open(index) as opened:  # as `cbir index build` does: paths shown
            opened.set_images_root(str(images.resolve()))  # relative to the folder
        env = {"CBIR_FOLLOW_INTERVAL_S": str(FOLLOW_INTERVAL_S), "CBIR_API_KEY": ""}
        watcher = _watcher(images, index, Path(tmp) / "watch.log")
        try:
            with Service(index, Path(tmp) / "service.log", env) as service, \
                    httpx.Client(base_url=service.url, timeout=60) as client:
                _top_path(client, arrivals[0].read_bytes())  # warm the query path up
                times = _measure(client, images, arrivals)
        finally:
            watcher.terminate()
            watcher.wait(timeout=60)
    result.figures = {"index_images": n, "max_side": plan.index_side, "arrivals": len(arrivals),
                      "debounce_s": 0.5, "follow_interval_s": FOLLOW_INTERVAL_S,
                      **{k: [round(v, 3) for v in vs] for k, vs in times.items()}}
    med = {k: statistics.median(vs) for k, vs in times.items()}
    result.notes = [f"saved -> stored {med['stored_s']:.2f} s, -> searchable "
                    f"{med['searchable_s']:.2f} s, moved -> searchable at the new path "
                    f"{med['moved_s']:.2f} s (medians of {len(arrivals)})"]
    return result
