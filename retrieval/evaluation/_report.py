"""Evaluation reports: ``results.json``, ``results.md`` (a table, best first) and ``results.png``.

One :class:`ResultRow` per evaluated variant (pooling, whitening) holds, per evaluation setup,
the metrics mAP, mP@1, mP@5, mP@10 (revisitop's mP@k) and, for UKBench, N-S. Benchmarks with
one ground truth have the setup ``"default"``; ROxford/RParis have easy/medium/hard, and their
*primary* setup — the one the row's top-level metrics and the best-first order use — is medium.
The JSON row is ``{"pooling", "whiten", "dim", "mAP", "mP@1", "mP@5", "mP@10"[, "N-S"]}`` plus,
for the revisited benchmarks, ``"setup": "medium"`` and ``"setups": {setup: metrics}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from retrieval.evaluation._metrics import EvaluationResult

__all__ = ["ResultRow", "markdown_table", "metrics_of", "sort_best_first", "write_chart",
           "write_results"]

PRIMARY_SETUP = "medium"
JSON_NAME, MARKDOWN_NAME, CHART_NAME = "results.json", "results.md", "results.png"


def metrics_of(result: EvaluationResult) -> dict[str, float]:
    """mAP, mP@k for each k evaluated, and N-S when the benchmark reports it."""
    metrics = {"mAP": result.mean_ap}
    metrics.update({f"mP@{k}": v for k, v in result.mean_precision_at.items()})
    if result.ns_score is not None:
        metrics["N-S"] = result.ns_score
    return metrics


@dataclass(frozen=True)
class ResultRow:
    """The scores of one variant; ``setups`` maps setup -> metric name -> value."""

    pooling: str
    whiten: bool
    dim: int
    setups: Mapping[str, Mapping[str, float]]

    @classmethod
    def of(cls, pooling: str, whiten: bool, dim: int,
           results: Mapping[str, EvaluationResult]) -> ResultRow:
        return cls(pooling, whiten, dim, {s: metrics_of(r) for s, r in results.items()})

    @property
    def label(self) -> str:
        return f"{self.pooling.upper()}{' + whiten' if self.whiten else ''}"

    @property
    def primary(self) -> str:
        return PRIMARY_SETUP if PRIMARY_SETUP in self.setups else next(iter(self.setups))

    @property
    def mean_ap(self) -> float:
        return self.setups[self.primary]["mAP"]

    def to_json(self) -> dict[str, object]:
        row: dict[str, object] = {"pooling": self.pooling, "whiten": self.whiten, "dim": self.dim}
        row.update(_json_metrics(self.setups[self.primary]))
        if len(self.setups) > 1:
            row["setup"] = self.primary
            row["setups"] = {s: _json_metrics(m) for s, m in self.setups.items()}
        return row


def _json_metrics(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """NaN (no query had positives) as null: JSON has no NaN."""
    return {k: None if np.isnan(v) else round(v, 6) for k, v in metrics.items()}


def sort_best_first(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """By the primary setup's mAP, highest first (NaN last; ties keep their order)."""
    return sorted(rows, key=lambda r: -r.mean_ap if not np.isnan(r.mean_ap) else np.inf)


def _fmt(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def markdown_table(rows: Sequence[ResultRow]) -> str:
    """A Markdown table of ``rows`` in the given order; per-setup columns when there are several."""
    if not rows:
        return ""
    setups = list(rows[0].setups)
    metrics = list(rows[0].setups[setups[0]])
    if len(setups) > 1:
        short = {s: s[0].upper() for s in setups}
        columns = [(s, m, f"{m} {short[s]}") for m in ("mAP", "mP@10") for s in setups]
    else:
        columns = [(setups[0], m, m) for m in metrics]
    head = ["pooling", "whiten", "dim", *(title for _, _, title in columns)]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in rows:
        cells = [r.pooling, "yes" if r.whiten else "no", str(r.dim),
                 *(_fmt(r.setups[s].get(m, float("nan"))) for s, m, _ in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bar_groups(rows: Sequence[ResultRow]) -> list[tuple[str | None, str, list[float]]]:
    """Per group of bars: its legend label, the setup it shows, and which rows it has (1/0)."""
    setups = list(rows[0].setups)
    if len(setups) > 1:
        return [(s, s, [1.0] * len(rows)) for s in setups]
    whitened = [1.0 if r.whiten else 0.0 for r in rows]
    if not any(whitened):
        return [(None, setups[0], [1.0] * len(rows))]
    return [("no whitening", setups[0], [1.0 - w for w in whitened]),
            ("whitened", setups[0], whitened)]


def write_chart(path: Path, rows: Sequence[ResultRow], title: str) -> None:
    """A bar chart of mAP per variant, PNG via Agg; bars grouped by setup when there are several,
    otherwise coloured by whitening."""
    groups = _bar_groups(rows) if rows else []
    n_setups = len(rows[0].setups) if rows else 1
    fig = Figure(figsize=(max(6.0, 1.0 * len(rows) * n_setups**0.5 + 2), 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / n_setups
    x = np.arange(len(rows), dtype=np.float64)
    for i, (legend, setup, mask) in enumerate(groups):
        keep = np.asarray(mask) > 0
        values = np.array([r.setups[setup]["mAP"] for r in rows])[keep]
        offset = (i - (n_setups - 1) / 2) * width if n_setups > 1 else 0.0
        bars = ax.bar(x[keep] + offset, values, width, label=legend, color=f"C{i}")
        ax.bar_label(bars, labels=[_fmt(float(v)) for v in values], fontsize=8, padding=2)
    tilt = len(rows) > 5
    ax.set_xticks(x, [r.label for r in rows], rotation=30 if tilt else 0,
                  ha="right" if tilt else "center", fontsize=9)
    ax.set_ylim(0.0, 1.08)
    ax.set_ylabel("mAP" + (" (by setup)" if n_setups > 1 else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if any(legend for legend, _, _ in groups):
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _markdown(summary: Mapping[str, object], rows: Sequence[ResultRow]) -> str:
    lines = [f"# cbir evaluate: {summary.get('dataset')}", "",
             f"backbone {summary.get('backbone')}, weights {summary.get('weights')}, "
             f"max side {summary.get('max_side')}, train {summary.get('train') or '-'}", ""]
    if summary.get("warning"):
        lines += [f"**WARNING: {summary['warning']}**", ""]
    lines.append(markdown_table(rows))
    timing = summary.get("timing")
    if isinstance(timing, Mapping):
        lines.append(f"total {timing.get('total_s')} s, feature extraction "
                     f"{timing.get('extraction_s')} s\n")
    return "\n".join(lines)


def write_results(
    out: Path, summary: Mapping[str, object], rows: Sequence[ResultRow], title: str
) -> dict[str, Path]:
    """Write the three reports into ``out`` (created); rows are written best first."""
    out.mkdir(parents=True, exist_ok=True)
    ranked = sort_best_first(rows)
    paths = {"json": out / JSON_NAME, "md": out / MARKDOWN_NAME, "png": out / CHART_NAME}
    document = {**summary, "results": [r.to_json() for r in ranked]}
    paths["json"].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(_markdown(summary, ranked), encoding="utf-8")
    write_chart(paths["png"], ranked, title)
    return paths
