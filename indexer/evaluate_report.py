"""What ``cbir evaluate`` writes and prints: the summary of ``results.json`` and the table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.evaluation import (
    Benchmark,
    FeatureCache,
    FeatureMaps,
    ResultRow,
    Variants,
    markdown_table,
    sort_best_first,
)

if TYPE_CHECKING:
    from indexer.evaluate import EvaluateOptions

__all__ = ["INFLATED", "print_rows", "summary"]

INFLATED = ("--train-on-test: MOP/VLAD and whitening were learned on the evaluated images "
            "themselves, so the mAP of those rows is INFLATED and not comparable to published "
            "results")


def _counts(maps: Sequence[FeatureMaps]) -> dict[str, Any]:
    """Maps read from the cache and forwarded, summed over scales; files unreadable at any."""
    return {"hits": sum(m.stats.cached for m in maps),
            "forwarded": sum(m.stats.forwarded for m in maps),
            "failed": sorted({f for m in maps for f in m.stats.failed})}


def summary(opts: EvaluateOptions, bench: Benchmark, variants: Variants, weights_id: str,
            side: int, cache: FeatureCache, maps: Sequence[FeatureMaps], train: list[Path],
            timing: dict[str, float]) -> dict[str, object]:
    """What ``results.json`` says besides the rows: the run's settings, cache and timing."""
    inflated = bool(train) and bool(opts.train_on_test)
    return {
        "dataset": bench.name, "root": str(opts.root), "backbone": opts.embedding.backbone,
        "weights": opts.embedding.weights, "weights_id": weights_id, "max_side": side,
        "pooling_params": {name: dict(e.config.pooling_params)
                           for name, e in variants.embedders.items()},
        "whiten_dim": opts.embedding.whiten_dim,
        "train": None if not train or inflated else opts.train_images,
        "n_train": len(train), "train_on_test": inflated, "mAP_inflated": inflated,
        "warning": INFLATED if inflated else None,
        "n_database": len(bench.database), "n_queries": len(bench.queries),
        "setups": list(bench.setups), "ap_method": opts.ap,
        "rerank": {"qe": opts.qe, "qe_alpha": opts.qe_alpha, "dba": opts.dba,
                   "dba_alpha": opts.dba_alpha, "diffusion": opts.diffusion},
        "preset": opts.preset,
        "similarity": "inner product of L2-normalised descriptors (exact)",
        "cache": {"directory": str(cache.directory), "dtype": cache.dtype,
                  **_counts(maps), "per_scale": [
                      {"max_side": m.max_side, **_counts([m])} for m in maps]},
        "timing": timing,
    }


def print_rows(rows: list[ResultRow], out: Path, maps: Sequence[FeatureMaps],
               timing: dict[str, float], inflated: bool) -> None:
    """The table, best first, then what was cached and forwarded, and where it was written."""
    print(markdown_table(sort_best_first(rows)), end="")
    if inflated:
        print(f"WARNING: {INFLATED}")
    counts = _counts(maps)
    failed = (f", {len(counts['failed'])} unreadable (scored as zero vectors)"
              if counts["failed"] else "")
    per_scale = "" if len(maps) == 1 else " (" + "; ".join(
        f"side {m.max_side}: {m.stats.cached} cached, {m.stats.forwarded} forwarded"
        for m in maps) + ")"
    print(f"feature maps: {counts['hits']} from cache, {counts['forwarded']} forwarded"
          f"{per_scale}{failed}; "
          f"extraction {timing['extraction_s']:.1f} s, fitting {timing['fit_s']:.1f} s, "
          f"pooling + search {timing['pooling_and_search_s']:.1f} s, "
          f"total {timing['total_s']:.1f} s")
    print(f"wrote {out / 'results.json'}, results.md, results.png")
