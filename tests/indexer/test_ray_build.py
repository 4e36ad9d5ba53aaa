"""``cbir index build --engine ray`` on a local 2-CPU Ray equals the local build.

One Ray start for the module (about 30 s with the actors' torch import): a paris250 subset (plus a
corrupt file) indexed locally and on Ray with ImageNet SqueezeNet, compared vector by vector, by
``cbir search --json``, by what was skipped, and by a resume that embeds nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from indexer import cli

pytestmark = [pytest.mark.shared, pytest.mark.slow]

N_IMAGES = 24


@pytest.fixture(scope="module")
def subset(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    root = tmp_path_factory.mktemp("paris_subset")
    photos = sorted((shared / "data" / "paris250").rglob("*.jpg"))
    for photo in photos[:: max(1, len(photos) // N_IMAGES)][:N_IMAGES]:
        (root / photo.name).symlink_to(photo)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def build(subset: Path, index: Path, weights: Path, *extra: str) -> None:
    argv = ["index", "build", "--images", str(subset), "--index", str(index),
            "--backbone", "squeezenet1_1", "--weights", str(weights), "--max-side", "128",
            "--threads", "1", "--no-progress", *extra]
    assert cli.main(argv) == 0


def vectors(index: Path) -> dict[str, np.ndarray]:
    with sqlite3.connect(index / "store.sqlite") as db:
        rows = db.execute("SELECT path, vector FROM images").fetchall()
    return {path: np.frombuffer(blob, np.float32) for path, blob in rows}


def search_json(index: Path, query: Path, capsys: pytest.CaptureFixture[str]) -> object:
    capsys.readouterr()
    assert cli.main(["search", "--index", str(index), str(query), "-k", "5", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ray_build_equals_local(subset: Path, squeezenet_weights: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    build(subset, tmp_path / "local", squeezenet_weights)
    build(subset, tmp_path / "ray", squeezenet_weights, "--engine", "ray")
    local, ray = vectors(tmp_path / "local"), vectors(tmp_path / "ray")
    assert len(local) == N_IMAGES and set(ray) == set(local)
    cosines = [float(local[p] @ ray[p]) for p in local]
    assert min(cosines) >= 0.9999, min(cosines)
    skipped = (tmp_path / "ray" / "skipped.log").read_text()
    assert "broken.jpg" in skipped
    for query in sorted(p for p in subset.glob("*.jpg") if p.name != "broken.jpg")[:2]:
        assert (search_json(tmp_path / "ray", query, capsys)
                == search_json(tmp_path / "local", query, capsys))
    capsys.readouterr()
    build(subset, tmp_path / "ray", squeezenet_weights, "--engine", "ray", "--resume")
    assert "indexed 0 images" in capsys.readouterr().out
    assert vectors(tmp_path / "ray").keys() == ray.keys()
