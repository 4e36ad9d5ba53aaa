"""Precision choice and the reduced-precision paths against fp32.

* ``auto`` and the fallbacks, with the CPU capability probe forced (no bf16, no VNNI, ...);
* bf16 (autocast + channels_last) and int8 (OpenVINO + NNCF) descriptors against fp32 on a seeded
  network (SqueezeNet 1.1, random weights, longer side 128): cosine >= 0.999 for every image;
* on paris250 with the shared ImageNet SqueezeNet (longer side 256 to keep it short),
  leave-one-out mAP of bf16 and int8 within 0.005 of fp32 for SUM and GeM.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from retrieval.errors import ConfigError, ManifestMismatchError
from retrieval.evaluation._benchmarks import load_benchmark
from retrieval.evaluation._metrics import evaluate
from retrieval.features import (
    Batch,
    CpuFeatures,
    Embedder,
    EmbedderConfig,
    check_query_precision,
    cpu_features,
    load_backbone,
    prepare_int8,
    resolve_precision,
)
from retrieval.features._backbone import Backbone
from retrieval.images import load_image
from tests.conftest import needs_bf16_units, needs_int8_units, scene

F32 = npt.NDArray[np.float32]
MIN_COSINE = 0.999
MAP_DROP = 0.005

NONE = CpuFeatures(frozenset({"avx2"}))
BF16_ONLY = CpuFeatures(frozenset({"avx512f", "avx512_bf16"}))
AMX = CpuFeatures(frozenset({"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                             "amx_int8"}))


def test_auto_follows_the_cpu_and_the_amount_of_work() -> None:
    assert resolve_precision("auto", probe=lambda: NONE) == "fp32"
    assert resolve_precision("auto", probe=lambda: BF16_ONLY, images=None) == "bf16"
    assert resolve_precision("auto", probe=lambda: AMX, images=1) == "bf16"  # one-off query
    assert resolve_precision("auto", probe=lambda: AMX, images=1, int8_ready=True) == "int8"
    assert resolve_precision("auto", probe=lambda: AMX, images=None) == "int8"  # a server
    assert resolve_precision("auto", probe=lambda: AMX, images=5000) == "int8"  # bulk indexing
    assert resolve_precision("fp32", probe=lambda: AMX) == "fp32"
    with pytest.raises(ConfigError):
        resolve_precision("fp8")


def test_the_probe_reads_the_flags_without_openvino(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"
                       "processor\t: 1\n", encoding="utf-8")
    vnni = cpu_features(cpuinfo, ask_openvino=False)
    assert vnni == CpuFeatures(frozenset({"fpu", "avx2", "avx512f", "avx512_vnni"}))
    assert vnni.int8 and not vnni.bf16
    assert cpu_features(tmp_path / "absent", ask_openvino=False) == CpuFeatures(frozenset())
    assert CpuFeatures(frozenset({"amx_bf16"})).bf16 and CpuFeatures(frozenset({"amx_int8"})).int8


def test_openvinos_bf16_answer_overrides_the_flags(tmp_path: Path) -> None:
    assert not CpuFeatures(frozenset({"avx512_bf16"}), native_bf16=False).bf16
    assert CpuFeatures(frozenset(), native_bf16=True).bf16
    assert not CpuFeatures(frozenset(), native_bf16=True).int8  # int8: the flags' question
    pytest.importorskip("openvino")
    import openvino as ov

    expected = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    probed = cpu_features(tmp_path / "absent")
    assert probed.native_bf16 is expected and probed.bf16 is expected
    assert "OpenVINO" in probed.describe()


def test_int8_is_cpu_only() -> None:
    with pytest.raises(ConfigError, match="CPU only"):
        resolve_precision("int8", "cuda:0")
    assert resolve_precision("auto", "cuda") in ("bf16", "fp32")


@pytest.mark.parametrize("choice", ["bf16", "int8", "auto"])
def test_a_cpu_without_the_units_falls_back_to_fp32_with_one_line(
    choice: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="retrieval.features._precision"):
        assert resolve_precision(choice, probe=lambda: NONE, images=None) == "fp32"
    assert len(caplog.records) == 1 and "fp32" in caplog.records[0].getMessage()


def test_mixing_precisions_is_allowed_only_where_measured() -> None:
    for a in ("fp32", "bf16", "int8"):
        for b in ("fp32", "bf16", "int8"):
            check_query_precision(a, b)
    with pytest.raises(ManifestMismatchError, match="no measured loss"):
        check_query_precision("int4", "fp32")


def _jpegs(n: int, side: int) -> list[bytes]:
    out = []
    for i in range(n):
        buffer = io.BytesIO()
        scene(100 + i, (side, side * 3 // 4) if i % 2 else (side * 3 // 4, side)).save(
            buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _descriptors(backbone: Backbone, images: list[bytes], side: int) -> F32:
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=side)
    return Embedder(config, backbone).embed_images([load_image(b) for b in images])


@pytest.mark.parametrize("precision", ["bf16", pytest.param("int8", marks=needs_int8_units)])
def test_reduced_precision_cosine_to_fp32_per_image(precision: str) -> None:
    side = 128
    images = _jpegs(20, side)
    reference = _descriptors(load_backbone("squeezenet1_1", "random"), images, side)
    backbone = load_backbone("squeezenet1_1", "random", precision=precision)
    if precision == "int8":
        prepare_int8(backbone, images[:8], max_side=side, cache_dir=None)  # 12 held out
    else:
        assert backbone.channels_last  # bf16 on CPU implies channels_last
    cosines = np.sum(reference * _descriptors(backbone, images, side), axis=1)
    assert cosines.min() >= MIN_COSINE, cosines


def test_int8_engine_is_cached_and_reloaded(tmp_path: Path) -> None:
    side, images = 96, _jpegs(6, 96)
    first = load_backbone("squeezenet1_1", "random", precision="int8")
    key = prepare_int8(first, images, max_side=side, cache_dir=tmp_path)
    assert (tmp_path / f"{key}.xml").is_file() and (tmp_path / f"{key}.bin").is_file()
    second = load_backbone("squeezenet1_1", "random", precision="int8")
    assert prepare_int8(second, images, max_side=side, cache_dir=tmp_path) == key
    a, b = _descriptors(first, images, side), _descriptors(second, images, side)
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError, match="prepare_int8"):
        load_backbone("squeezenet1_1", "random", precision="int8").forward(
            torch.zeros((1, 3, 32, 32), dtype=torch.uint8))


def _loo_map(bench_truth: list, vectors: F32) -> float:  # type: ignore[type-arg]
    return evaluate(bench_truth, scores=vectors @ vectors.T).mean_ap


PARIS_SIDE = 256


def _paris250_maps(shared: Path, weights: Path, precision: str) -> dict[str, float]:
    """Leave-one-out mAP of SUM and GeM on paris250 at ``precision`` (one forward per photo)."""
    bench = load_benchmark("folders", shared / "data" / "paris250")
    backbone = load_backbone("squeezenet1_1", str(weights), precision=precision)
    if precision == "int8":
        sample = [bench.database[i] for i in range(0, len(bench.database), 16)]
        prepare_int8(backbone, sample, max_side=PARIS_SIDE, cache_dir=None)
    config = EmbedderConfig(backbone="squeezenet1_1", max_side=PARIS_SIDE)
    batches = [b for b in Embedder(config, backbone).extract(enumerate(bench.database),
                                                             batch_size=1)
               if isinstance(b, Batch)]  # one image each, in order: shared by the poolings
    maps = {}
    for pooling in ("sum", "gem"):
        embedder = Embedder(EmbedderConfig(backbone="squeezenet1_1", max_side=PARIS_SIDE,
                                           pooling=pooling), backbone)
        vectors = np.concatenate([embedder.describe_batch(b)[0] for b in batches])
        maps[pooling] = _loo_map(bench.truth(), vectors)
    return maps


@pytest.fixture(scope="module")
def paris250_fp32(shared: Path, squeezenet_weights: Path) -> dict[str, float]:
    return _paris250_maps(shared, squeezenet_weights, "fp32")


@pytest.mark.shared
@pytest.mark.parametrize("precision", [pytest.param("bf16", marks=needs_bf16_units),
                                       pytest.param("int8", marks=needs_int8_units)])
def test_paris250_map_within_0005_of_fp32(shared: Path, squeezenet_weights: Path,
                                          paris250_fp32: dict[str, float], precision: str) -> None:
    """Where the CPU has the units (elsewhere both run fp32 by design: nothing to compare)."""
    maps = _paris250_maps(shared, squeezenet_weights, precision)
    for pooling in ("sum", "gem"):
        drop = paris250_fp32[pooling] - maps[pooling]
        assert drop <= MAP_DROP, (precision, pooling, maps, paris250_fp32)
