"""``--preset fast|balanced|quality``: pooling, max side, scales and re-ranking chosen per
backbone from paris250 measurements (docs/diffusion.md); explicit flags override.

A preset fills in only the flags the command line did not give: :func:`track_given` marks the
flags a parser saw, :func:`preset_overrides` gives the preset's value of every other one (which
the command's ``from_args`` writes over its parsed defaults). The
diffusion presets need the index to keep a neighbour graph of :attr:`Preset.graph_k` neighbours.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from retrieval import UnknownNameError
from retrieval.rerank import Diffusion

__all__ = ["PRESETS", "PRESET_FLAGS", "Preset", "given_flags", "preset_for", "preset_overrides",
           "track_given"]

#: The destinations a preset sets (each the dest of a flag of build and evaluate).
PRESET_FLAGS = ("pooling", "max_side", "scales", "qe", "dba", "diffusion")
_GIVEN = "_given_flags"


@dataclass(frozen=True)
class Preset:
    """What a preset picks for one backbone, and why."""

    pooling: str
    max_side: int
    scales: tuple[float, ...]
    qe: int
    dba: int
    diffusion: str | None  # a Diffusion.parse spec ("on"), None: no diffusion
    why: str

    @property
    def graph_k(self) -> int:
        """Neighbours the index's graph must keep for this preset's diffusion (0: none)."""
        d = None if self.diffusion is None else Diffusion.parse(self.diffusion)
        return 0 if d is None else max(d.k, d.candidates)

    def values(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "max_side": self.max_side, "scales": self.scales,
                "qe": self.qe, "dba": self.dba, "diffusion": self.diffusion}


_THREE = (1.0, 0.707, 0.5)
_SQUEEZE = ("paris250, SqueezeNet 1.1, R-MAC + DBA + diffusion: 256 px 0.942, 362 px 0.969, "
            "512 px 0.965, 362+256 0.965, 512+256 0.963, 512/362/256 0.970 (+ αQE 0.973)")
_VGG = ("not measured here (no VGG16 weights on this machine): VGG16's pool5 has stride 32, "
        "SqueezeNet's last maps stride 16, so VGG16 gets the same map size at twice the side")

PRESETS: dict[str, dict[str, Preset]] = {
    "fast": {
        "squeezenet1_1": Preset("rmac", 256, (1.0,), 2, 2, "on",
                                f"half the forward time of 512 px (0.945); {_SQUEEZE}"),
        "vgg16": Preset("rmac", 512, (1.0,), 2, 2, "on", f"squeezenet1_1's at 2x; {_VGG}"),
    },
    "balanced": {
        "squeezenet1_1": Preset("rmac", 362, (1.0,), 0, 2, "on",
                                f"0.74x the forward time of 512 px and as good as 3 scales "
                                f"(0.969); {_SQUEEZE}"),
        "vgg16": Preset("rmac", 724, (1.0,), 0, 2, "on", f"squeezenet1_1's at 2x; {_VGG}"),
    },
    "quality": {
        "squeezenet1_1": Preset("rmac", 512, _THREE, 2, 2, "on",
                                f"three scales, 2.25x the forward time of 512 px (0.973); "
                                f"{_SQUEEZE}"),
        "vgg16": Preset("rmac", 1024, _THREE, 2, 2, "on", f"squeezenet1_1's at 2x; {_VGG}"),
    },
}


def preset_for(name: str, backbone: str) -> Preset:
    """The preset ``name`` for ``backbone``; :class:`UnknownNameError` lists the choices."""
    if name not in PRESETS:
        raise UnknownNameError("preset", name, PRESETS)
    by_backbone = PRESETS[name]
    if backbone not in by_backbone:
        raise UnknownNameError(f"backbone for preset {name!r}", backbone, by_backbone)
    return by_backbone[backbone]


def track_given(parser: argparse.ArgumentParser, dests: Iterable[str] = PRESET_FLAGS) -> None:
    """Make ``parser`` note in the namespace which of ``dests`` the command line gave."""
    wanted = set(dests)
    for action in parser._actions:
        if action.dest in wanted:
            action.__class__ = _noting(type(action))


_NOTING: dict[type, type] = {}


def _noting(cls: type) -> type:
    if cls not in _NOTING:
        def call(self: argparse.Action, parser: argparse.ArgumentParser, namespace: Any,
                 values: Any, option: str | None = None) -> None:
            given: set[str] = getattr(namespace, _GIVEN, set())
            given.add(self.dest)
            setattr(namespace, _GIVEN, given)
            cls.__call__(self, parser, namespace, values, option)
        _NOTING[cls] = type(f"Noting{cls.__name__}", (cls,), {"__call__": call})
    return _NOTING[cls]


def given_flags(namespace: object) -> set[str]:
    """The preset flags a parser with :func:`track_given` saw on the command line."""
    given: set[str] = getattr(namespace, _GIVEN, set())
    return given


def preset_overrides(name: str | None, backbone: str, given: set[str]) -> dict[str, Any]:
    """The values preset ``name`` (None: none) sets for ``backbone``, but for the flags given:
    what a command's ``from_args`` writes over its parsed defaults."""
    if name is None:
        return {}
    chosen = preset_for(name, backbone)
    return {dest: value for dest, value in chosen.values().items() if dest not in given}
