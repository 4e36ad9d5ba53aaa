"""Convolutional backbones cut where retrieval uses them, and how their weights are loaded.

Registry (``BACKBONES``):

* ``vgg16`` — torchvision VGG16 ``features`` through pool5: a 512 × H/32 × W/32 map (the default).
* ``squeezenet1_1`` — torchvision SqueezeNet 1.1 ``features``: also 512 channels.

Weights are named by a string:

* ``imagenet`` — torchvision's own ImageNet weights, read from its cache (``torch.hub.get_dir()``)
  and downloaded when the network allows. Offline and uncached, :class:`WeightsError` says where to
  put the file or how to pass one.
* a path — a torchvision-format state dict (the full classifier's, or only ``features.*``).
* ``random`` — seeded random initialisation, for tests. Never chosen silently.

Runtime options (not part of what a vector means, like the device): ``precision`` runs the
network under autocast (``bf16`` or ``fp16``; ``fp32``, the default, uses no autocast at all), or
for ``int8`` through the quantised engine :func:`retrieval.features._int8.prepare_int8` attaches
(``Backbone.engine``); ``channels_last`` stores weights and inputs in NHWC order, which cuDNN's
tensor-core kernels and oneDNN's bf16 kernels prefer: ``bf16`` on CPU always uses it (without it
bf16 is slower than fp32). Choosing a precision (``auto``, CPU capabilities) is
:mod:`retrieval.features._precision`'s job. Outputs are always float32.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from retrieval.errors import ConfigError, UnknownNameError, WeightsError

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRECISIONS",
    "Backbone",
    "BackboneSpec",
    "load_backbone",
    "resized_shape",
]

log = logging.getLogger(__name__)

_RANDOM_INIT = threading.Lock()

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_SIDE = 32
#: Autocast dtypes by name; ``fp32`` means no autocast.
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": None,  # no autocast: the OpenVINO engine (retrieval.features._int8)
}


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: its constructor, ImageNet weights enum and default input size."""

    name: str
    build: Callable[..., nn.Module]
    imagenet: Any  # a torchvision WeightsEnum member
    default_max_side: int
    channels: int = 512


def _constructor(name: str) -> Callable[..., nn.Module]:
    """``torchvision.models.<name>``, imported on the first call (torchvision costs seconds)."""

    def build(**kwargs: Any) -> nn.Module:
        from torchvision import models

        model: nn.Module = getattr(models, name)(**kwargs)
        return model

    return build


class _LazyWeights:
    """``torchvision.models.<enum>.<member>``, imported on first attribute access."""

    def __init__(self, enum: str, member: str) -> None:
        self._enum, self.name = enum, member

    def __getattr__(self, attr: str) -> Any:
        from torchvision import models

        return getattr(getattr(getattr(models, self._enum), self.name), attr)


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        "vgg16", _constructor("vgg16"), _LazyWeights("VGG16_Weights", "IMAGENET1K_V1"),
        default_max_side=1024,
    ),
    "squeezenet1_1": BackboneSpec(
        "squeezenet1_1",
        _constructor("squeezenet1_1"),
        _LazyWeights("SqueezeNet1_1_Weights", "IMAGENET1K_V1"),
        default_max_side=1024,
    ),
}


def resized_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) after scaling so the longer side is ``max_side``; short side >= 32."""
    scale = max_side / max(width, height)
    return max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))


class Backbone:
    """A frozen feature extractor on one device, with the preprocessing it expects."""

    def __init__(
        self, spec: BackboneSpec, features: nn.Module, weights_id: str, device: str, *,
        precision: str = "fp32", channels_last: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise UnknownNameError("precision", precision, PRECISIONS)
        self.spec = spec
        self.weights_id = weights_id
        self.device = torch.device(device)
        self.precision = precision
        #: the int8 engine (float32 NCHW -> float32 map), attached by ``prepare_int8``
        self.engine: Callable[[torch.Tensor], torch.Tensor] | None = None
        cpu_bf16 = precision == "bf16" and self.device.type == "cpu"
        self.channels_last = channels_last or cpu_bf16
        self.features = features.to(self.device).eval()
        if self.channels_last:
            self.features = self.features.to(memory_format=torch.channels_last)
        for p in self.features.parameters():
            p.requires_grad_(False)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def channels(self) -> int:
        return self.spec.channels

    def preprocess(self, image: Image.Image, max_side: int) -> torch.Tensor:
        """RGB image -> uint8 tensor (3, H, W), longer side ``max_side``, aspect kept."""
        size = resized_shape(image.width, image.height, max_side)
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        array = np.array(rgb, dtype=np.uint8)  # a writable copy
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> the float input the network expects, on its device and layout."""
        x = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.float().div_(255.0).sub_(self._mean).div_(self._std)

    def autocast(self) -> AbstractContextManager[object]:
        """The autocast context of this backbone's precision (none for ``fp32``)."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) images of one size -> float32 feature maps (N, C, h, w)."""
        x = self.normalize(batch)
        if self.precision == "int8":
            if self.engine is None:
                raise ConfigError("an int8 backbone needs its engine: call prepare_int8 first")
            return self.engine(x)
        with self.autocast():
            out: torch.Tensor = self.features(x)
        return out.float().contiguous()


def load_backbone(
    name: str,
    weights: str,
    *,
    device: str = "cpu",
    seed: int = 0,
    allow_download: bool = True,
    precision: str = "fp32",
    channels_last: bool = False,
) -> Backbone:
    """Build backbone ``name`` with ``weights`` ("imagenet", "random" or a state-dict path).

    ``precision`` and ``channels_last`` are the runtime options described in the module docstring.
    """
    runtime: dict[str, Any] = {"precision": precision, "channels_last": channels_last}
    spec = BACKBONES.get(name)
    if spec is None:
        raise UnknownNameError("backbone", name, BACKBONES)
    if weights == "random":
        # torch's generator is process-global: two threads building at once (two apps loading in
        # one process) would interleave its stream and get different "seeded" weights
        with _RANDOM_INIT, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.build(weights=None)
        log.warning("%s uses RANDOM weights (seed %d): similarities are not meaningful", name, seed)
        return Backbone(spec, _features(model), f"random:seed={seed}", device, **runtime)
    if weights == "imagenet":
        state = _imagenet_state(spec, allow_download)
        identity = f"imagenet:{spec.imagenet.name}"
    else:
        state = _file_state(Path(weights))
        identity = _file_identity(spec, Path(weights))
    model = spec.build(weights=None)
    _load_state(model, state, source=weights)
    return Backbone(spec, _features(model), identity, device, **runtime)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_identity(spec: BackboneSpec, path: Path) -> str:
    """``sha256:<hex>``, or ``imagenet:<name>`` when the file is torchvision's own ImageNet file.

    torchvision names its files ``<arch>-<first hex digits of the sha256>.pth``, so a local copy of
    the official file is recognised and interchangeable with the cached download.
    """
    digest = file_sha256(path)
    official = os.path.basename(spec.imagenet.url).rsplit(".", 1)[0].rsplit("-", 1)[-1]
    if len(official) >= 8 and digest.startswith(official):
        return f"imagenet:{spec.imagenet.name}"
    return f"sha256:{digest}"


def _features(model: nn.Module) -> nn.Module:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise WeightsError(f"{type(model).__name__} has no 'features' module")
    return features


def _imagenet_state(spec: BackboneSpec, allow_download: bool) -> dict[str, Any]:
    url: str = spec.imagenet.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cached.exists() and not allow_download:
        raise WeightsError(_missing_message(spec, cached, "downloads are disabled"))
    try:
        state: dict[str, Any] = spec.imagenet.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise WeightsError(_missing_message(spec, cached, str(exc))) from exc
    return state


def _missing_message(spec: BackboneSpec, cached: Path, why: str) -> str:
    return (
        f"{spec.name} ImageNet weights are not in torchvision's cache ({cached}) and could not "
        f"be downloaded ({why}). Fetch {spec.imagenet.url} where there is network and copy it "
        f"to {cached}, or pass the file with --weights PATH (CBIR_WEIGHTS for the service)."
    )


def _file_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"weights file {path} {_load_refusal(exc)}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {path} does not hold a state dict")
    return state


def _one_line(text: str, limit: int = 240) -> str:
    """``text`` (a library's multi-line message) as one line of at most ``limit`` characters."""
    joined = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return joined if len(joined) <= limit else joined[:limit - 1].rstrip() + "…"


def _load_refusal(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in words (torch's are a page)."""
    text = str(exc)
    if "Unsupported global" in text:
        return ("holds pickled Python objects, not only tensors (a whole saved model?); save "
                "model.state_dict() with torch.save and pass that file")
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return "is not a PyTorch weights file (a state dict saved with torch.save, .pth/.pt)"
    return f"is not a readable PyTorch state dict ({type(exc).__name__}: {_one_line(text, 160)})"


def _load_state(model: nn.Module, state: dict[str, Any], *, source: str) -> None:
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise WeightsError(f"weights {source} do not fit {type(model).__name__}: "
                           f"{_one_line(str(exc))}") from None
    missing_features = [k for k in missing if k.startswith("features.")]
    if unexpected or missing_features:
        bad = (unexpected + missing_features)[:5]
        raise WeightsError(
            f"weights {source} do not match {type(model).__name__}: "
            f"{len(unexpected)} unexpected and {len(missing_features)} missing keys, e.g. {bad} "
            "(weights for another --backbone?)"
        )
