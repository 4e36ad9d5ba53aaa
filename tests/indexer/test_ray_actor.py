"""The Ray build's actor and its sources, without a cluster: multi-scale vectors and layouts equal
the local embedder's, and ``file://`` URIs are listed and read through pyarrow's filesystems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval import Embedder, EmbedderConfig, create_collection, load_image
from retrieval.features import layout_descriptors
from tests.conftest import scene

ray_build = pytest.importorskip("indexer.ray_build", reason="pip install -e '.[ray]'")
pytest.importorskip("ray", reason="pip install -e '.[ray]'")


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        scene(40 + i, (96, 64) if i % 2 else (64, 80)).save(root / ("sub" if i % 2 else "") /
                                                            f"p{i}.png")
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_file_uris_are_listed_and_read(photos: Path) -> None:
    uris = ray_build.list_uri_images(f"file://{photos}")
    assert uris == sorted(f"file://{p}" for p in photos.rglob("*") if p.suffix in
                          (".png", ".jpg"))
    assert ray_build._source(uris[0]) == Path(uris[0][len("file://"):]).read_bytes()
    assert ray_build._source(str(photos / "p0.png")) == photos / "p0.png"


def test_actor_embeds_every_scale_and_the_layout_like_the_local_embedder(
        photos: Path, tmp_path: Path) -> None:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64,
                            pooling="crow", scales=(1.0, 0.5))
    embedder = Embedder.create(config)
    collection = create_collection(tmp_path / "index", embedder)
    try:
        manifest = collection.manifest.to_dict()
    finally:
        collection.close()
    actor = ray_build.EmbedActor(manifest, {}, None)
    uris = ray_build.list_uri_images(f"file://{photos}")
    out = actor({"path": np.array(uris, dtype=object)})
    assert list(out["path"]) == uris
    assert out["error"][uris.index(f"file://{photos / 'broken.jpg'}")]
    for row, uri in enumerate(uris):
        if uri.endswith("broken.jpg"):
            continue
        image = load_image(Path(uri[len("file://"):]))
        np.testing.assert_allclose(out["vector"][row], embedder.embed([image])[0], atol=1e-5)
        first = embedder.feature_maps([image])[0][0]
        np.testing.assert_allclose(out["layout"][row].astype(np.float32),
                                   layout_descriptors(first[None])[0].astype(np.float32),
                                   atol=2e-3)
