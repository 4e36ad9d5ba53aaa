"""A description of the machine a run measured on, stored beside every result."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import faiss
import torch
import torchvision

__all__ = ["describe", "load_average"]


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other processes running shows here)."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict[str, Any]:
    """CPU, cores, torch threads, GPU, library versions, load average, date."""
    cuda = torch.cuda.is_available()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "faiss": faiss.__version__,
        "load_average_at_start": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "note": "shared machine: other processes may have been running; compare the ratios, "
                "which were measured side by side, not the absolute rates",
    }
