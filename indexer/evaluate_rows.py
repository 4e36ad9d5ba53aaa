"""``cbir evaluate``'s rows of one pooling variant: alone, +αQE, +αQE+DBA and the diffusion rows.

Every re-ranked row is computed by the kernel the index searches with (:mod:`retrieval.rerank`),
under its strict protocol: a leave-one-out query is never part of its own DBA or graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from retrieval.evaluation import (
    Diffusion,
    diffused_rankings,
    inner_product_scores,
    reranked_scores,
)
from retrieval.rerank import Rerank

__all__ = ["RowRequest", "diffusion_of", "full_suffix", "preset_row", "variant_runs"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RowRequest:
    """Which rows to report: αQE / DBA (k = 0: none) and the diffusion settings."""

    rerank: Rerank = field(default_factory=Rerank)
    diffusion: Diffusion | None = None

    @property
    def qe(self) -> int:
        return self.rerank.qe_k

    @property
    def dba(self) -> int:
        return self.rerank.dba_k


def variant_runs(xq: F32, xb: F32, where: Sequence[int | None],
                 rows: RowRequest) -> list[tuple[str, dict[str, F32 | I64]]]:
    """(row suffix, ``scores=`` or ``rankings=`` for :func:`evaluate_benchmark`) per row."""
    runs: list[tuple[str, dict[str, F32 | I64]]] = [
        ("", {"scores": inner_product_scores(xq, xb)})]
    qe, dba = rows.qe, rows.dba
    if qe:
        runs.append((f"+qe{qe}", {"scores": reranked_scores(
            xq, xb, where, qe_k=qe, qe_alpha=rows.rerank.qe_alpha)}))
    if qe and dba:
        runs.append((f"+qe{qe}+dba{dba}", {"scores": reranked_scores(
            xq, xb, where, qe_k=qe, qe_alpha=rows.rerank.qe_alpha, dba_k=dba,
            dba_alpha=rows.rerank.dba_alpha)}))
    d = rows.diffusion
    if d is not None:
        tag = "+" + d.label
        runs.append((tag, {"rankings": diffused_rankings(xq, xb, where, diffusion=d)}))
        if dba:
            runs.append((f"+dba{dba}{tag}", {"rankings": diffused_rankings(
                xq, xb, where, diffusion=d, dba_k=dba, dba_alpha=rows.rerank.dba_alpha)}))
        if dba and qe:
            runs.append((f"+qe{qe}+dba{dba}{tag}", {"rankings": diffused_rankings(
                xq, xb, where, diffusion=d, qe_k=qe, qe_alpha=rows.rerank.qe_alpha, dba_k=dba,
                dba_alpha=rows.rerank.dba_alpha)}))
    return runs


def full_suffix(rows: RowRequest) -> str:
    """The suffix of the most re-ranked row :func:`variant_runs` reports (a preset's row)."""
    qe = f"+qe{rows.qe}" if rows.qe else ""
    dba = f"+dba{rows.dba}" if rows.dba else ""
    if rows.diffusion is not None:
        return (qe if dba else "") + dba + "+" + rows.diffusion.label
    return qe + (dba if qe else "")


def preset_row(pooling: str, scales: Sequence[float], rows: RowRequest) -> str:
    """The label of the row that measures a preset: its pooling, scales, all its re-ranking."""
    tag = "" if len(scales) == 1 else "@" + ",".join(f"{s:g}" for s in scales)
    return pooling + tag + full_suffix(rows)


def diffusion_of(spec: str | None) -> Diffusion | None:
    """``--diffusion SPEC`` (None: no diffusion rows); ConfigError for a bad spec."""
    return None if spec is None else Diffusion.parse(spec)
