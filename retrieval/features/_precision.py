"""Which numeric precision the backbone runs in: names, the CPU probe, ``auto`` and compatibility.

Precisions (:data:`Precision`): ``fp32`` (eager float32, the exact reference), ``bf16`` (autocast;
on CPU always with channels_last, without which oneDNN reorders around every convolution and bf16
is slower than fp32), ``fp16`` (autocast, for CUDA) and ``int8`` (static post-training
quantisation with OpenVINO + NNCF, CPU only, :mod:`retrieval.features._int8`).

``auto`` (:func:`resolve_precision`) picks what this processor runs natively:

* CUDA: ``bf16`` where the GPU supports it, else ``fp32``.
* CPU with int8 dot-product units (AVX-512 VNNI, AVX-VNNI or AMX-INT8): ``int8`` when its start-up
  (calibration + quantisation, 15-70 s, once per cache key) is amortised — a cached engine exists,
  the process is long-lived (a server), or at least :data:`INT8_MIN_IMAGES` images are to be
  embedded — else ``bf16`` when the CPU has native bf16, else ``fp32``.
* CPU with native bf16 (AVX512_BF16 or AMX-BF16): ``bf16``.
* anything else: ``fp32``, with one log line.

The probe (:func:`cpu_features`) takes the bf16 answer from OpenVINO's CPU plugin when openvino
is installed (oneDNN's run-time check, OS support included) and from ``/proc/cpuinfo``'s flags
otherwise; the int8 answer always from the flags (OpenVINO lists INT8 on every x86 CPU).

An explicit ``bf16`` or ``int8`` on a CPU without the matching units also falls back to ``fp32``
with one log line (emulated bf16 is slower than fp32); it never fails.

Vectors made at different precisions are comparable when their measured loss is negligible:
:data:`MEASURED_MAP_LOSS` holds the worst paris250 leave-one-out mAP drop against fp32 (ImageNet
SqueezeNet 1.1, SUM and GeM, max side 512), and :func:`check_query_precision` allows a query
precision against an index precision when the two losses add up to at most
:data:`NEGLIGIBLE_MAP_LOSS`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from retrieval.errors import ConfigError, ManifestMismatchError

__all__ = [
    "INT8_MIN_IMAGES",
    "MEASURED_MAP_LOSS",
    "NEGLIGIBLE_MAP_LOSS",
    "PRECISION_CHOICES",
    "CpuFeatures",
    "Precision",
    "PrecisionChoice",
    "Probe",
    "check_query_precision",
    "cpu_features",
    "resolve_precision",
]

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16", "int8"]
PrecisionChoice = Literal["fp32", "bf16", "fp16", "int8", "auto"]
PRECISION_CHOICES: tuple[str, ...] = get_args(PrecisionChoice)

#: Worst paris250 mAP drop against fp32 over SUM and GeM (measured, see README "Performance").
MEASURED_MAP_LOSS: dict[str, float] = {"fp32": 0.0, "bf16": 0.0003, "fp16": 0.0003, "int8": 0.0020}
NEGLIGIBLE_MAP_LOSS = 0.005
#: ``auto`` prefers int8 over bf16 for a job of at least this many images (without a cached
#: engine): 30-70 s of calibration repays itself at ~0.03 s saved per VGG16 image.
INT8_MIN_IMAGES = 1000


@dataclass(frozen=True)
class CpuFeatures:
    """What this CPU offers for low precision.

    ``flags``: as ``/proc/cpuinfo`` names them; ``native_bf16``: OpenVINO's CPU plugin's answer
    (None: not asked, openvino is not installed). OpenVINO answers bf16 through oneDNN's run-time
    ISA check (which also checks that the OS enabled the state), but lists ``INT8`` on every x86
    CPU (it runs int8 without VNNI too, emulated), so the int8 question is the flags' alone.
    """

    flags: frozenset[str]
    native_bf16: bool | None = None

    @property
    def bf16(self) -> bool:
        if self.native_bf16 is not None:
            return self.native_bf16
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def int8(self) -> bool:
        # every CPU with AMX-INT8 also has AVX-512 VNNI, which needs no OS opt-in beyond AVX-512
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    def describe(self) -> str:
        wanted = ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                  "amx_int8")
        shown = " ".join(f for f in wanted if f in self.flags) or "no AVX-512/VNNI/AMX"
        if self.native_bf16 is None:
            return shown
        return f"{shown}; OpenVINO: {'native' if self.native_bf16 else 'no native'} bf16"


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo"), *,
                 ask_openvino: bool = True) -> CpuFeatures:
    """The low-precision features of this CPU: its flags (none where ``cpuinfo`` is unreadable)
    and, where openvino is installed and ``ask_openvino``, OpenVINO's bf16 answer."""
    return CpuFeatures(_cpuinfo_flags(cpuinfo), openvino_bf16() if ask_openvino else None)


def openvino_bf16() -> bool | None:
    """Whether OpenVINO's CPU plugin lists ``BF16`` in ``OPTIMIZATION_CAPABILITIES``; None
    without openvino (an optional extra) or when the plugin cannot answer."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception as exc:  # a plugin that cannot answer: "not known"
        log.debug("OpenVINO could not report the CPU's capabilities: %s", exc)
        return None
    return "BF16" in capabilities


def _cpuinfo_flags(cpuinfo: Path) -> frozenset[str]:
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


Probe = Callable[[], CpuFeatures]


def resolve_precision(
    choice: str, device: str = "cpu", *, images: int | None = 1, int8_ready: bool = False,
    probe: Probe = cpu_features,
) -> Precision:
    """The precision to run: ``choice``, or for ``auto`` the fastest native one (module doc).

    ``images``: how many images this process will embed (None: long-lived, e.g. a server);
    ``int8_ready``: a quantised engine is already cached. ``probe`` is injectable for tests.
    """
    if choice not in PRECISION_CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, "
                          f"got {choice!r}")
    on_cpu = device.split(":")[0] == "cpu"
    if not on_cpu:
        return _resolve_accelerator(choice)
    if choice in ("fp32", "fp16"):
        return "fp32" if choice == "fp32" else "fp16"
    cpu = probe()
    if choice == "auto":
        return _auto_cpu(cpu, images, int8_ready)
    native = cpu.int8 if choice == "int8" else cpu.bf16
    if choice == "int8" and not int8_installed():
        raise ConfigError("precision int8 needs OpenVINO and NNCF: pip install 'cbir[int8]'")
    if not native:
        units = "VNNI/AMX-INT8" if choice == "int8" else "AVX512-BF16/AMX-BF16"
        log.warning("precision %s: this CPU has no %s (%s); running fp32", choice, units,
                    cpu.describe())
        return "fp32"
    return "int8" if choice == "int8" else "bf16"


def int8_installed() -> bool:
    """Whether the int8 engine's packages (``pip install 'cbir[int8]'``) are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def _auto_cpu(cpu: CpuFeatures, images: int | None, int8_ready: bool) -> Precision:
    amortised = int8_ready or images is None or images >= INT8_MIN_IMAGES
    if cpu.int8 and (amortised or not cpu.bf16) and int8_installed():
        chosen: Precision = "int8"
    elif cpu.bf16:
        chosen = "bf16"
    else:
        log.info("precision auto: fp32 (this CPU has no native bf16 or int8 units: %s)",
                 cpu.describe())
        return "fp32"
    log.info("precision auto: %s (CPU: %s)", chosen, cpu.describe())
    return chosen


def _resolve_accelerator(choice: str) -> Precision:
    if choice == "int8":
        raise ConfigError("precision int8 runs on the CPU only (OpenVINO); use bf16 on a GPU")
    if choice != "auto":
        return "bf16" if choice == "bf16" else "fp16" if choice == "fp16" else "fp32"
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def check_query_precision(index_precision: str, query_precision: str) -> None:
    """Refuse a query precision whose measured loss against the index's is not negligible."""
    if index_precision == query_precision:
        return
    unknown = [p for p in (index_precision, query_precision) if p not in MEASURED_MAP_LOSS]
    if unknown:
        raise ManifestMismatchError(
            f"the index was embedded in {index_precision} and the query would be {query_precision}"
            f"; {', '.join(unknown)} has no measured loss, so they may not be mixed")
    loss = MEASURED_MAP_LOSS[index_precision] + MEASURED_MAP_LOSS[query_precision]
    if loss > NEGLIGIBLE_MAP_LOSS:
        raise ManifestMismatchError(
            f"querying a {index_precision} index in {query_precision} loses up to {loss:.4f} mAP "
            f"(more than {NEGLIGIBLE_MAP_LOSS}); use --precision {index_precision}")
