"""Shared fixtures: generated images, the shared data folder, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from indexer.milvus_server import MilvusServer, MilvusServerError
from retrieval.features import cpu_features

REPO = Path(__file__).resolve().parents[1]


#: Whether ``--precision int8`` runs int8 on this CPU (VNNI or AMX-INT8 units). Elsewhere it runs
#: fp32 by design (retrieval.features._precision), so the tests of int8 itself skip there and the
#: fallback's tests run instead.
INT8_UNITS = cpu_features(ask_openvino=False).int8
needs_int8_units = pytest.mark.skipif(
    not INT8_UNITS, reason="this CPU has no VNNI/AMX-INT8 units: --precision int8 runs fp32 here")
#: The same for bf16 (AVX512-BF16 or AMX-BF16 units, OpenVINO's answer where it is installed).
BF16_UNITS = cpu_features().bf16
needs_bf16_units = pytest.mark.skipif(
    not BF16_UNITS, reason="this CPU has no AVX512-BF16/AMX-BF16 units: --precision bf16 runs fp32 "
    "here")


def shared_root() -> Path:
    return Path(os.environ.get("CBIR_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (or $CBIR_SHARED); the test is skipped when it is absent."""
    root = shared_root()
    if not (root / "data" / "paris250").is_dir():
        pytest.skip(f"shared test data not found at {root} (set CBIR_SHARED)")
    return root


@pytest.fixture(scope="session")
def squeezenet_weights(shared: Path) -> Path:
    path = shared / "weights" / "squeezenet1_1_imagenet.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def paris_map_cache(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one feature-map cache (``cbir evaluate --cache``) of every paris250 evaluation in the
    session: each photo is forwarded once per side and precision, whichever test asks first
    ($CBIR_TEST_MAP_CACHE keeps one across sessions)."""
    kept = os.environ.get("CBIR_TEST_MAP_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("paris_maps")


@pytest.fixture(scope="session")
def paris250_sum_index(shared: Path, squeezenet_weights: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> Path:
    """paris250 indexed by the real CLI: SUM at 512 px, ImageNet SqueezeNet (built once)."""
    from indexer.cli import main

    index = tmp_path_factory.mktemp("paris250") / "index"
    code = main(["index", "build", "--images", str(shared / "data" / "paris250"), "--index",
                 str(index), "--backbone", "squeezenet1_1", "--weights", str(squeezenet_weights),
                 "--pooling", "sum", "--max-side", "512", "--no-progress"])
    assert code == 0
    return index


def scene(seed: int, size: tuple[int, int]) -> Image.Image:
    """A small synthetic photo: a coloured background with a few shapes, seeded."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        box = (x0, y0, x0 + int(rng.integers(8, w // 2)), y0 + int(rng.integers(8, h // 2)))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return image


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 generated images of different sizes and modes, in sub-folders, plus one corrupt file."""
    root = tmp_path_factory.mktemp("images")
    sizes = [(96, 64), (64, 96), (80, 80), (120, 72)]
    for i in range(12):
        folder = root / f"group{i % 3}"
        folder.mkdir(exist_ok=True)
        image = scene(i, sizes[i % len(sizes)])
        if i % 4 == 1:
            image.convert("L").save(folder / f"img{i:02d}.png")
        elif i % 4 == 2:
            image.convert("RGBA").save(folder / f"img{i:02d}.webp")
        else:
            image.save(folder / f"img{i:02d}.jpg", quality=90)
    (root / "group0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


@pytest.fixture(scope="session")
def milvus_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """The session's one Milvus server (:mod:`indexer.milvus_server`), stopped at the end (a test
    may restart it: same port, same data). Skipped without the ``milvus`` package; a server that
    does not start FAILS the tests that need it, with its log's tail."""
    pytest.importorskip("milvus", reason="pip install -e '.[milvus]'")
    server = MilvusServer(tmp_path_factory.mktemp("milvus_server"))
    try:
        server.start()
    except MilvusServerError as exc:
        pytest.fail(f"the Milvus server did not start: {exc}", pytrace=False)
    print(f"\nMilvus server {server.uri} ready in {server.start_s:.1f} s")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus_server(milvus_server_process: MilvusServer) -> str:
    """The URI of the session's Milvus server."""
    return milvus_server_process.uri
