"""int8 CPU inference of a backbone: static post-training quantisation with OpenVINO + NNCF.

``torch.export`` (H and W dynamic) -> ``openvino.convert_model`` -> ``nncf.quantize`` (symmetric
per-channel int8 weights, per-tensor activations, fast bias correction; calibrated on up to
:data:`CALIBRATION_IMAGES` images of the collection) -> one compiled model for every batch size
and aspect ratio (a new shape costs 0.02-0.15 s on its first call; nothing recompiles). Layers
NNCF leaves in float run in OpenVINO's default (bf16 on a bf16 CPU).

Start-up is amortised by a cache on disk: the quantised model is written as OpenVINO IR
(``<key>.xml`` + ``.bin``) in the directory the caller names, keyed by :func:`engine_key` —
backbone, weights identity, precision, calibration set and the openvino/nncf/torch versions (not
the input size: H and W stay dynamic). Quantising takes 15-70 s on 2 cores (nearly all NNCF's
calibration); loading a cached model ~1.5 s. Reading a cached model needs ``openvino`` alone.
openvino and nncf are imported here only, on first use, so nothing else pays for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval.errors import ConfigError, ImageDecodeError
from retrieval.features._backbone import IMAGENET_MEAN, IMAGENET_STD, Backbone
from retrieval.features._extraction import Source

__all__ = ["CALIBRATION_IMAGES", "Int8Engine", "calibration_id", "engine_key", "prepare_int8"]

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 16
_VERSIONED = ("openvino", "nncf", "torch")


class Int8Engine:
    """float32 NCHW (normalised) -> float32 feature map, on a compiled OpenVINO model."""

    def __init__(self, ov_model: Any, *, threads: int | None = None) -> None:
        import openvino as ov

        self.ov_model = ov_model
        self.key: str | None = None  # set by prepare_int8: the cache key and calibration set id
        self.calibration: str | None = None
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(ov_model, "CPU", config)
        self._local = threading.local()  # an InferRequest is not thread-safe: one per thread

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        out = request.infer({0: array})[0]
        return torch.from_numpy(np.array(out, dtype=np.float32))  # a copy: the request reuses it

    def save(self, path: Path) -> None:
        """Write ``path`` (.xml) and its .bin; the .xml appears last, so it marks a whole model."""
        import openvino as ov

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.xml")
        ov.save_model(self.ov_model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, *, threads: int | None = None) -> Int8Engine:
        import openvino as ov

        return cls(ov.Core().read_model(str(path)), threads=threads)


def quantize(features: torch.nn.Module, calibration: Sequence[torch.Tensor], *,
             threads: int | None = None) -> Int8Engine:
    """Static int8 PTQ of ``features`` on normalised (1, 3, H, W) images of any sizes."""
    import nncf
    import openvino as ov
    from torch.export import Dim

    features = features.eval().cpu()
    example = calibration[0].to(torch.float32)
    with torch.no_grad():
        exported = torch.export.export(features, (example,),
                                       dynamic_shapes=({2: Dim.DYNAMIC, 3: Dim.DYNAMIC},))
    model = ov.convert_model(exported)
    model.reshape({0: ov.PartialShape([-1, 3, -1, -1])})  # dynamic batch too
    samples = [c.to(torch.float32).numpy() for c in calibration]
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars must not reach --json
        quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                                  preset=nncf.QuantizationPreset.PERFORMANCE)
    return Int8Engine(quantized, threads=threads)


def calibration_id(sources: Sequence[Source]) -> str:
    """sha256 over the calibration images' bytes (order-independent)."""
    digests = sorted(hashlib.sha256(_bytes(s)).hexdigest() for s in sources)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def engine_key(backbone: str, weights_id: str, max_side: int, calibration: str) -> str:
    """The cache key: what the quantised numbers depend on (H, W are dynamic, so not the shape)."""
    parts = [backbone, weights_id, "int8", str(max_side), calibration]
    parts += [f"{name}={_version(name)}" for name in _VERSIONED]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return f"{backbone}-int8-{digest}"


def prepare_int8(
    backbone: Backbone, sources: Sequence[Source], *, max_side: int, cache_dir: Path | None,
) -> str:
    """Give an ``int8`` backbone its engine, from ``cache_dir`` or calibrated on ``sources``.

    At most :data:`CALIBRATION_IMAGES` sources are used (the caller samples them); returns the
    engine's cache key. Without ``cache_dir`` nothing is cached.
    """
    if backbone.precision != "int8":
        raise ConfigError(f"prepare_int8 needs an int8 backbone, got {backbone.precision}")
    sources = list(sources)[:CALIBRATION_IMAGES]
    if not sources:
        raise ConfigError("int8 needs calibration images and none were given")
    calibration = calibration_id(sources)
    key = engine_key(backbone.name, backbone.weights_id, max_side, calibration)
    path = cache_dir / f"{key}.xml" if cache_dir is not None else None
    start = time.perf_counter()
    threads = torch.get_num_threads()
    if path is not None and path.exists():
        engine = Int8Engine.load(path, threads=threads)
        engine.key, engine.calibration = key, calibration
        backbone.engine = engine
        log.debug("int8 engine %s loaded from %s in %.1f s", key, cache_dir,
                  time.perf_counter() - start)
        return key
    tensors = _calibration_tensors(backbone, sources, max_side)
    engine = quantize(backbone.features, tensors, threads=threads)
    engine.key, engine.calibration = key, calibration
    if path is not None:
        engine.save(path)
    backbone.engine = engine
    log.info("int8: quantised %s on %d images in %.1f s%s", backbone.name, len(tensors),
             time.perf_counter() - start, f", cached as {path}" if path else "")
    return key


def _calibration_tensors(backbone: Backbone, sources: Sequence[Source],
                         max_side: int) -> list[torch.Tensor]:
    """Normalised (1, 3, H, W) CPU tensors of the readable ``sources`` (others are skipped)."""
    from retrieval.images import load_image

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    tensors = []
    for source in sources:
        try:
            x = backbone.preprocess(load_image(source), max_side)[None]
        except ImageDecodeError as exc:
            log.warning("int8 calibration skips %s", exc)
            continue
        tensors.append(x.float().div_(255.0).sub_(mean).div_(std))
    if not tensors:
        raise ConfigError("int8 calibration: none of the calibration images is readable")
    return tensors


def _bytes(source: Source) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"
