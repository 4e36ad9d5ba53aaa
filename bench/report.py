"""What a part found — figures, targets met or not, notes — written to ``results/<part>.json``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "PartResult", "Target", "summary_lines", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    """One ratio (or count) and the bound it must meet."""

    name: str
    value: float
    bound: float
    higher_is_better: bool = True

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.higher_is_better else self.value <= self.bound

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        verdict = "met" if self.met else "NOT met"
        return f"{self.name}: {self.value:.3f} (target {sign} {self.bound:g}) {verdict}"


@dataclass
class PartResult:
    """The outcome of one part; ``status`` is ``ok``, ``skipped`` or ``failed``."""

    part: str
    title: str
    status: str = "ok"
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self, machine: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "part": self.part, "title": self.title, "status": self.status, "reason": self.reason,
            "mode": mode, "seconds": round(self.seconds, 1),
            "targets": [{**asdict(t), "met": t.met} for t in self.targets],
            "figures": self.figures, "notes": self.notes, "machine": machine,
        }


def write_result(result: PartResult, machine: dict[str, Any], mode: str,
                 directory: Path = RESULTS) -> Path:
    """Write ``<part>.json`` (``<part>.<mode>.json`` for a mode other than ``default``)
    atomically, through a ``.tmp`` file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (f"{result.part}.json" if mode == "default" else
                        f"{result.part}.{mode}.json")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result.to_json(machine, mode), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def summary_lines(result: PartResult) -> list[str]:
    """A few readable lines: the status, every target, the notes."""
    head = f"[{result.part}] {result.title}: {result.status} ({result.seconds:.0f} s)"
    lines = [head + (f" — {result.reason}" if result.reason else "")]
    lines += [f"    {t.line()}" for t in result.targets]
    lines += [f"    {note}" for note in result.notes]
    return lines
