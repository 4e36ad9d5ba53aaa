"""Measuring retrieval: metrics, ranking, benchmark loaders, the feature-map cache, reports.

The metric and loader modules (``_metrics``, ``_ranking``, ``_datasets``, ``_landmarks``,
``_benchmarks``) use numpy and PIL only; the feature-map cache and the pooling variants need torch.
Scale combination and the strict-protocol αQE / DBA scores are the re-ranking kernel's
(:mod:`retrieval.rerank`, the code the index searches with), re-exported here.
"""

from retrieval.evaluation._benchmarks import (
    BENCHMARKS,
    Benchmark,
    evaluate_benchmark,
    load_benchmark,
)
from retrieval.evaluation._feature_maps import FeatureMaps, MapRequest
from retrieval.evaluation._map_cache import FeatureCache
from retrieval.evaluation._metrics import (
    EvaluationResult,
    QueryTruth,
    average_precision,
    evaluate,
    mean_average_precision,
)
from retrieval.evaluation._report import ResultRow, markdown_table, sort_best_first, write_results
from retrieval.evaluation._variants import Variant, Variants, inner_product_scores
from retrieval.rerank import Diffusion, combine_scales, diffused_rankings, reranked_scores

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Diffusion",
    "EvaluationResult",
    "FeatureCache",
    "FeatureMaps",
    "MapRequest",
    "QueryTruth",
    "ResultRow",
    "Variant",
    "Variants",
    "average_precision",
    "combine_scales",
    "diffused_rankings",
    "evaluate",
    "evaluate_benchmark",
    "inner_product_scores",
    "load_benchmark",
    "markdown_table",
    "mean_average_precision",
    "reranked_scores",
    "sort_best_first",
    "write_results",
]
