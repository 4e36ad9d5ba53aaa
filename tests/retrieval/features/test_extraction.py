from pathlib import Path

import pytest
import torch

from retrieval.features._backbone import Backbone, load_backbone
from retrieval.features._extraction import Batch, Failure, extract_batches
from retrieval.images import list_images, load_image


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone("squeezenet1_1", "random")


def test_batches_group_equal_sizes_and_match_single_forward(
    backbone: Backbone, image_folder: Path
) -> None:
    paths = list_images(image_folder)
    items = list(extract_batches(backbone, [(p, p) for p in paths], max_side=64, batch_size=3))
    batches = [i for i in items if isinstance(i, Batch)]
    failures = [i for i in items if isinstance(i, Failure)]
    assert [f.key.name for f in failures] == ["broken.jpg"]
    assert "broken.jpg" in str(failures[0].error)
    seen = [d.key for b in batches for d in b.items]
    assert sorted(seen) == sorted(p for p in paths if p.name != "broken.jpg")
    for batch in batches:
        assert len(batch.items) <= 3
        assert len({tuple(d.pixels.shape) for d in batch.items}) == 1
        for d, fmap in zip(batch.items, batch.fmaps, strict=True):
            single = backbone.forward(backbone.preprocess(load_image(d.key), 64)[None])[0]
            torch.testing.assert_close(fmap, single, rtol=1e-4, atol=1e-4)
            assert (d.width, d.height) == load_image(d.key).size
            assert len(d.sha256) == 64


def test_bytes_sources_and_many_shapes(backbone: Backbone, image_folder: Path) -> None:
    paths = list_images(image_folder)
    sources = [(str(i), p.read_bytes()) for i, p in enumerate(paths)] * 3
    items = list(extract_batches(backbone, sources, max_side=48, batch_size=2, workers=1))
    keys = [d.key for i in items if isinstance(i, Batch) for d in i.items]
    keys += [i.key for i in items if isinstance(i, Failure)]
    assert sorted(keys) == sorted(k for k, _ in sources)
