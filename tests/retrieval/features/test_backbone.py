from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import models

from retrieval.errors import UnknownNameError, WeightsError
from retrieval.features._backbone import (
    BACKBONES,
    BackboneSpec,
    _file_identity,
    load_backbone,
    resized_shape,
)


@pytest.fixture(scope="module")
def squeeze() -> object:
    return load_backbone("squeezenet1_1", "random", seed=1)


def test_registry_and_unknown_name() -> None:
    assert set(BACKBONES) == {"vgg16", "squeezenet1_1"}
    with pytest.raises(UnknownNameError, match="squeezenet1_1, vgg16"):
        load_backbone("resnet50", "random")


def test_vgg16_is_cut_at_pool5() -> None:
    vgg = load_backbone("vgg16", "random")
    out = vgg.forward(torch.zeros((1, 3, 64, 96), dtype=torch.uint8))
    assert out.shape == (1, 512, 2, 3)
    assert isinstance(list(vgg.features.children())[-1], torch.nn.MaxPool2d)
    assert vgg.weights_id == "random:seed=0"


def test_random_weights_are_seeded(squeeze) -> None:  # type: ignore[no-untyped-def]
    x = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    same = load_backbone("squeezenet1_1", "random", seed=1)
    other = load_backbone("squeezenet1_1", "random", seed=2)
    assert torch.equal(squeeze.forward(x), same.forward(x))
    assert not torch.equal(squeeze.forward(x), other.forward(x))
    assert squeeze.forward(x).shape[1] == 512


def test_preprocess_keeps_aspect_and_longer_side(squeeze) -> None:  # type: ignore[no-untyped-def]
    t = squeeze.preprocess(Image.new("RGB", (300, 200), (255, 0, 0)), 150)
    assert t.shape == (3, 100, 150) and t.dtype == torch.uint8
    assert t[:, 0, 0].tolist() == [255, 0, 0]
    assert resized_shape(1000, 10, 100) == (100, 32)  # short side never below 32
    assert resized_shape(50, 40, 100) == (100, 80)  # small images are scaled up


def test_missing_imagenet_weights_say_what_to_do(tmp_path: Path) -> None:
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(WeightsError) as err:
            load_backbone("vgg16", "imagenet", allow_download=False)
    finally:
        torch.hub.set_dir(old)
    message = str(err.value)
    assert str(tmp_path / "checkpoints" / "vgg16-397923af.pth") in message
    assert "--weights PATH" in message


def test_weights_file_round_trip(tmp_path: Path, squeeze) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(5)
    model = models.squeezenet1_1(weights=None)
    full = tmp_path / "full.pth"
    torch.save(model.state_dict(), full)
    features_only = tmp_path / "features.pth"
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("features.")},
               features_only)
    a, b = load_backbone("squeezenet1_1", str(full)), load_backbone("squeezenet1_1",
                                                                      str(features_only))
    x = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(a.forward(x), model.features(((x / 255.0) - a._mean) / a._std))
    assert torch.allclose(a.forward(x), b.forward(x))
    assert a.weights_id.startswith("sha256:") and a.weights_id != b.weights_id


def test_bad_weights_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load_backbone("vgg16", str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="is not a PyTorch weights file"):
        load_backbone("vgg16", str(garbage))
    squeeze_file = tmp_path / "squeeze.pth"
    torch.save(models.squeezenet1_1(weights=None).state_dict(), squeeze_file)
    with pytest.raises(WeightsError, match=r"do not (match|fit)"):
        load_backbone("vgg16", str(squeeze_file))


def test_official_file_is_recognised_as_imagenet(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    prefix = hashlib.sha256(b"weights").hexdigest()[:8]

    class Official:
        url = f"https://example.invalid/models/net-{prefix}.pth"
        name = "IMAGENET1K_V1"

    spec = BackboneSpec("net", models.squeezenet1_1, Official(), default_max_side=64)
    assert _file_identity(spec, path) == "imagenet:IMAGENET1K_V1"
    other = BackboneSpec("net", models.squeezenet1_1, BACKBONES["vgg16"].imagenet, 64)
    assert _file_identity(other, path).startswith("sha256:")


def test_seeded_random_weights_are_identical_when_built_in_threads() -> None:
    """Two apps loading in one process build at once; torch's generator is process-global."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        nets = list(pool.map(lambda _: load_backbone("squeezenet1_1", "random", seed=0),
                             range(4)))
    first = nets[0].features.state_dict()
    for net in nets[1:]:
        for name, value in net.features.state_dict().items():
            assert torch.equal(value, first[name]), name
