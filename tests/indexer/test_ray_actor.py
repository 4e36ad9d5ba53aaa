"""The Ray build's actor and its sources, without a cluster: multi-scale vectors and layouts equal
the local embedder's, and ``file://`` URIs are listed and read through pyarrow's filesystems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval import (
    ClusterError,
    Embedder,
    EmbedderConfig,
    IngestReport,
    create_collection,
    fit_embedder,
    load_image,
)
from retrieval.features import Batch
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


@pytest.mark.parametrize("whiten", [False, True])
def test_actor_embeds_every_scale_and_the_layout_like_the_local_embedder(
        photos: Path, tmp_path: Path, whiten: bool) -> None:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64,
                            pooling="crow", scales=(1.0, 0.5), whiten=whiten)
    embedder = Embedder.create(config)
    readable = [p for p in sorted(photos.rglob("*.png"))]
    if whiten:  # fitted state travels in memory, as the driver ships it
        fit_embedder(embedder, [(str(p), p) for p in readable])
    collection = create_collection(tmp_path / "index", embedder)
    try:
        manifest = collection.manifest.to_dict()
    finally:
        collection.close()
    actor = ray_build.EmbedActor(manifest, embedder.state_blobs(), None)
    uris = ray_build.list_uri_images(f"file://{photos}")
    out = actor({"path": np.array(uris, dtype=object)})
    assert list(out["path"]) == uris
    assert out["error"][uris.index(f"file://{photos / 'broken.jpg'}")]
    local = {}
    for item in embedder.extract([(str(p), p) for p in readable]):  # the local ingest's path
        assert isinstance(item, Batch)
        for d, vector, layout in zip(item.items, *embedder.describe_batch(item), strict=True):
            local[d.key] = (vector, layout)
    for row, uri in enumerate(uris):
        if uri.endswith("broken.jpg"):
            continue
        path = uri[len("file://"):]
        vector, layout = local[path]
        np.testing.assert_array_equal(out["vector"][row], vector)  # bit for bit
        np.testing.assert_array_equal(out["layout"][row], layout)
        query = embedder.embed_images([load_image(Path(path))])[0]
        np.testing.assert_allclose(out["vector"][row], query, atol=1e-5)


class _DiesAfterOneBatch:
    """A dataset whose pool hands back one batch and then loses its actor (Ray Data's seam)."""

    def __init__(self, batch: dict[str, np.ndarray]) -> None:
        self.batch = batch

    def iter_batches(self, **_: object) -> Iterator[dict[str, np.ndarray]]:
        import ray

        yield self.batch
        raise ray.exceptions.ActorDiedError()


def test_a_dead_actor_is_one_line_and_the_stored_batch_stays(photos: Path, tmp_path: Path) -> None:
    embedder = Embedder.create(EmbedderConfig(backbone="squeezenet1_1", weights="random",
                                              max_side=64))
    collection = create_collection(tmp_path / "index", embedder)
    try:
        actor = ray_build.EmbedActor(collection.manifest.to_dict(), embedder.state_blobs(), None)
        paths = [str(p) for p in sorted(photos.rglob("*.png"))]
        batch = actor({"path": np.array(paths[:2], dtype=object)})
        report = IngestReport()
        with pytest.raises(ClusterError) as caught:
            ray_build._drain(_DiesAfterOneBatch(batch), len(paths), collection, report,
                             ray_build._Pace(0.0), False)
        message = str(caught.value)
        assert "\n" not in message and "ActorDiedError" in message, message
        assert "stopped after 2 of 4 images" in message and "--resume" in message
        assert collection.index.ntotal == 2 and report.added_keys == paths[:2]
    finally:
        collection.close()
