"""``make run BACKBONE=squeezenet1_1 WEIGHTS=FILE`` as a user runs it: the real Makefile target in
its own process group, served over HTTP, searched, stopped with Ctrl-C (issue 21's "done when").

The images are 4 photos of each of 5 Paris landmarks (the shared data) and scikit-image's
multi-page TIFF, which the demo leaves out with one calm line. Real weights are checked by what
random ones cannot do: a photo's nearest other photo shows the same landmark (measured on these
20 photos: 19 of 20 with the ImageNet weights, 6 of 20 with random ones).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.service.conftest import wait_until_ready

PER_LANDMARK = 4
SAME_LANDMARK_AT_LEAST = 16  # of 20 queries whose nearest other photo shows the same landmark
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def installed_venv() -> tuple[Path, Path]:
    """This interpreter's venv and its ``make venv`` stamp; skip where ``make run`` would
    install one (the test must not pip-install into anyone's venv)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = Path(sys.prefix)
    stamp = venv / ".installed"
    if not stamp.is_file():
        pytest.skip(f"{venv} was not made by `make venv` (no {stamp}): make run would install")
    return venv, stamp


def photo_folder(shared: Path, root: Path) -> Path:
    skimage = pytest.importorskip("skimage")
    for landmark in sorted(p for p in (shared / "data" / "paris250").iterdir() if p.is_dir()):
        (root / landmark.name).mkdir(parents=True)
        for photo in sorted(landmark.glob("*.jpg"))[:PER_LANDMARK]:
            shutil.copy(photo, root / landmark.name / photo.name)
    shutil.copy(Path(skimage.__file__).parent / "data" / "multipage_rgb.tif", root)
    return root


def make_run(venv: Path, stamp: Path, weights: Path, images: Path, index: Path, port: int,
             log: Path) -> subprocess.Popen[bytes]:
    """``make run`` in the checkout, in a process group of its own. ``-o STAMP``: the venv is
    taken as installed even when the checkout's pyproject.toml is newer than its stamp."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CBIR_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    argv = ["make", "--no-print-directory", "-C", str(REPO), "-o", str(stamp), "run",
            f"VENV={venv}", "BACKBONE=squeezenet1_1", f"WEIGHTS={weights}", f"IMAGES={images}",
            f"DEMO_INDEX={index}", "HOST=127.0.0.1", f"PORT={port}"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as in a terminal: SIGINT to the whole process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("make run did not stop within 30 s of Ctrl-C")


@pytest.mark.shared
@pytest.mark.slow
def test_make_run_serves_real_results_from_a_local_weights_file(
    shared: Path, squeezenet_weights: Path, tmp_path: Path,
) -> None:
    venv, stamp = installed_venv()
    images = photo_folder(shared, tmp_path / "photos")
    photos = sorted(images.glob("*/*.jpg"))
    index, log, port = tmp_path / "demo-index", tmp_path / "make-run.log", free_port()
    proc = make_run(venv, stamp, squeezenet_weights, images, index, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            wait_until_ready(proc, client, log, "make run", START_TIMEOUT_S)
            stats = client.get("/stats").json()
            with photos[0].open("rb") as f:
                one = client.post("/search", params={"k": 3},
                                  files={"image": (photos[0].name, f, "image/jpeg")}).json()
            batch = client.post("/search/batch", params={"k": 2}, files=[
                ("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]).json()
    finally:
        stop(proc)
    printed = log.read_text()

    assert stats["count"] == len(photos) == 20 and not stats["random_weights"]
    assert stats["manifest"]["backbone"] == "squeezenet1_1"
    assert stats["manifest"]["weights"].startswith("sha256:")
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["weights_file"] == str(squeezenet_weights.resolve())

    top = one["results"][0]
    assert Path(top["path"]).name == photos[0].name and top["score"] == pytest.approx(1, abs=1e-3)

    same = 0
    for photo, entry in zip(photos, batch["queries"], strict=True):
        itself, nearest = entry["results"]
        assert Path(itself["path"]).name == photo.name, entry
        same += Path(nearest["path"]).parent.name == photo.parent.name
    assert same >= SAME_LANDMARK_AT_LEAST, f"{same} of {len(photos)} on their landmark"

    assert "Finished server process" in printed  # a clean shutdown on Ctrl-C
    assert "left out 1 files the decoder does not take: multipage_rgb.tif" in printed
    lowered = printed.lower()
    assert "traceback" not in lowered and "skip" not in lowered and "random" not in lowered
    assert not [line for line in printed.splitlines() if "WARNING" in line or "ERROR" in line]
