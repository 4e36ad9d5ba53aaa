"""``cbir evaluate``: mAP of every pooling (and whitening) on a standard benchmark.

Each image is forwarded once; its feature map is cached on disk (``--cache``, default
``<out>/cache``) and every pooling variant is computed from it, so a second run — say with other
poolings — forwards nothing. With ``--whiten`` every pooling is evaluated twice, without and with
PCA-whitening, so the table compares them. Whitening and the MOP/VLAD codebooks are learned on
``--train-images DIR`` (old spelling ``--train``), which should be another dataset (Paris6k for
Oxford5k and back); learning them on the evaluated images (``--train-on-test``) is allowed only on
purpose and said loudly, because it inflates mAP; with ``--queries`` the database itself may be
``--train-images`` (it is not what is queried: only an overlap with the queries is refused).
Search is exact inner product of L2-normalised descriptors. ``--scales`` forwards each image at
each scale (cached per scale, so adding a scale forwards only that one); ``--qe K`` adds a +αQE
row per pooling and ``--dba K`` a +αQE+DBA row, under the strict protocol of
:mod:`retrieval.rerank` (the kernel the index uses).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from indexer.argtypes import Subparsers, from_namespace
from indexer.evaluate_report import INFLATED, print_rows, summary
from indexer.evaluate_rows import RowRequest, diffusion_of, preset_row, variant_runs
from indexer.options import EmbeddingOptions, add_embedding_flags, positive
from indexer.presets import PRESETS, given_flags, preset_overrides, track_given
from indexer.progress import counted, progress_bar
from retrieval import ConfigError, calibration_sample, list_images
from retrieval.evaluation import (
    BENCHMARKS,
    Benchmark,
    FeatureCache,
    FeatureMaps,
    MapRequest,
    ResultRow,
    Variant,
    Variants,
    combine_scales,
    evaluate_benchmark,
    load_benchmark,
    write_results,
)
from retrieval.features import (
    PRECISION_CHOICES,
    Backbone,
    load_backbone,
    prepare_int8,
    resolve_precision,
)
from retrieval.pooling import pooling_class, pooling_names
from retrieval.rerank import MAX_RERANK_K, Rerank

__all__ = ["EvaluateOptions", "add_parser", "run_evaluate"]

log = logging.getLogger("cbir")

F32 = npt.NDArray[np.float32]


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("evaluate", help=help_text)
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(BENCHMARKS)}")
    p.add_argument("--root", required=True, help="the benchmark's folder, in its standard layout")
    p.add_argument("--queries", default=None, help="folders only: a labelled query folder")
    p.add_argument("--rotated", action="store_true", help="holidays: use jpg_rotated/")
    add_embedding_flags(p, one_pooling=False, pooling_default="sum,avg,max,gem",
                        pooling_help=f"comma-separated, from {','.join(pooling_names())} "
                                     "(default sum,avg,max,gem)")
    p.add_argument("--whiten", action="store_true",
                   help="evaluate every pooling without AND with PCA-whitening")
    p.add_argument("--train-images", "--train", dest="train_images", default=None,
                   metavar="DIR",
                   help="images to learn whitening / MOP on (another dataset, e.g. Paris6k for "
                        "Oxford5k); required by --whiten and mop (--train: the old spelling)")
    p.add_argument("--train-on-test", dest="train_on_test", action="store_true",
                   help="learn on the evaluated images instead (inflates mAP; said in the output)")
    p.add_argument("--train-sample", dest="train_sample", type=positive, default=500,
                   help="at most this many training images, sampled with --seed (default 500)")
    p.add_argument("--out", default=None, help="output folder (default: results/<dataset>)")
    p.add_argument("--cache", default=None, help="feature-map cache (default: <out>/cache)")
    p.add_argument("--cache-dtype", dest="cache_dtype", choices=("float16", "float32"),
                   default="float16", help="storage of cached maps (default float16)")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=8,
                   help="images per forward pass (default 8)")
    p.add_argument("--workers", type=positive, default=2, help="image decoding threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                   help="fp32 (default), bf16, fp16, int8 (calibrated on a sample of the "
                        "database, cached beside the maps) or auto; maps are cached per precision")
    p.add_argument("--threads", type=positive, default=None, help="torch intra-op threads")
    p.add_argument("--qe", type=int, default=0, help="also report each pooling + αQE(K)")
    p.add_argument("--qe-alpha", dest="qe_alpha", type=float, default=3.0,
                   help="αQE weight exponent (default 3)")
    p.add_argument("--dba", type=int, default=0, help="also report + αQE + DBA(K) (needs --qe)")
    p.add_argument("--dba-alpha", dest="dba_alpha", type=float, default=3.0,
                   help="DBA weight exponent (default 3)")
    p.add_argument("--diffusion", default=None, metavar="SPEC",
                   help="also report + diffusion rows (alone, + DBA, + αQE + DBA): on, or "
                        "name=value pairs overriding the defaults, e.g. k=30,alpha=0.95")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="evaluate what cbir index build --preset picks for --backbone "
                        "(pooling, max side, scales, re-ranking); explicit flags override it")
    p.add_argument("--ap", choices=("trapezoidal", "non_interpolated"), default="trapezoidal",
                   help="AP of the Oxford/Paris protocol or revisitop's (default trapezoidal)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress output")
    track_given(p)
    p.set_defaults(options=EvaluateOptions.from_args, run=run_evaluate)


@dataclass(frozen=True)
class EvaluateOptions:
    """``cbir evaluate``'s flags, typed (``pooling``: the comma-separated list as given)."""

    dataset: str
    root: str
    embedding: EmbeddingOptions
    pooling: str = "sum,avg,max,gem"
    queries: str | None = None
    rotated: bool = False
    whiten: bool = False
    train_images: str | None = None
    train_on_test: bool = False
    train_sample: int = 500
    out: str | None = None
    cache: str | None = None
    cache_dtype: Literal["float16", "float32"] = "float16"
    batch_size: int = 8
    workers: int = 2
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    qe: int = 0
    qe_alpha: float = 3.0
    dba: int = 0
    dba_alpha: float = 3.0
    ap: Literal["trapezoidal", "non_interpolated"] = "trapezoidal"
    progress: bool = True
    diffusion: str | None = None
    preset: str | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> EvaluateOptions:
        for dest, value in preset_overrides(ns.preset, ns.backbone, given_flags(ns)).items():
            setattr(ns, dest, value)
        return from_namespace(cls, ns, embedding=EmbeddingOptions.from_args(ns))


def _row_request(opts: EvaluateOptions) -> RowRequest:
    """The re-ranked rows the flags ask for (the one reading of ``--qe --dba --diffusion``)."""
    rerank = Rerank(qe_k=opts.qe, qe_alpha=opts.qe_alpha, dba_k=opts.dba,
                    dba_alpha=opts.dba_alpha)
    return RowRequest(rerank, diffusion_of(opts.diffusion))


def _poolings(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--pooling names no pooling")
    for name in names:
        pooling_class(name)  # UnknownNameError lists the valid names
    return list(dict.fromkeys(names))


def _train_paths(opts: EvaluateOptions, bench: Benchmark, needs: bool) -> list[Path]:
    """The (sampled) training images; checks --train-images / --train-on-test against needs."""
    if opts.train_images and opts.train_on_test:
        raise ConfigError("--train-images and --train-on-test exclude each other")
    if not needs:
        if opts.train_images or opts.train_on_test:
            log.info("nothing to learn (no learning pooling, no --whiten): training images "
                     "not used")
        return []
    if not (opts.train_images or opts.train_on_test):
        raise ConfigError("learning poolings (mop) and --whiten learn from training images: pass "
                          "--train-images DIR (another dataset, e.g. Paris6k for Oxford5k) or "
                          "--train-on-test (inflates mAP)")
    if opts.train_on_test or opts.train_images is None:
        pool = list(bench.database)
    else:
        pool = list_images(opts.train_images)
        against = [q.path for q in bench.queries] if opts.queries else bench.database
        shared = {p.resolve() for p in pool} & {p.resolve() for p in against}
        if shared and opts.queries:
            raise ConfigError(f"--train-images {opts.train_images} holds {len(shared)} of the "
                              "query images")
        if shared:
            raise ConfigError(f"--train-images {opts.train_images} holds {len(shared)} of the "
                              "evaluated images; pass --train-on-test to learn on them on purpose")
    if len(pool) < 2:
        raise ConfigError(f"need at least 2 training images, found {len(pool)}")
    if len(pool) > opts.train_sample:
        pool = sorted(random.Random(opts.embedding.seed).sample(pool, opts.train_sample))
    return pool


def _query_requests(bench: Benchmark) -> dict[int, MapRequest]:
    """Queries that need their own map: crops, and images outside the database."""
    return {i: MapRequest(q.path, q.box) for i, q in enumerate(bench.queries)
            if q.box is not None or q.database_index is None}


def _query_matrix(bench: Benchmark, xb: F32, own: F32, order: Sequence[int]) -> F32:
    row_of = {qi: r for r, qi in enumerate(order)}
    rows = [own[row_of[i]] if i in row_of else xb[q.database_index]
            for i, q in enumerate(bench.queries)]
    if not rows:
        return np.zeros((0, xb.shape[1]), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


def _extract(maps: FeatureMaps, requests: list[MapRequest], progress: bool) -> float:
    start = time.perf_counter()
    todo = maps.plan(requests)
    log.info("feature maps: %d distinct images, %d cached, %d to forward", len(set(requests)),
             maps.stats.cached, len(todo))
    with progress_bar(len(todo), enabled=progress) as bar:
        maps.forward(todo, bar.update)
    return time.perf_counter() - start


def _describe(bench: Benchmark, variants: Variants, scale_maps: list[FeatureMaps],
              queries: dict[int, MapRequest], progress: bool) -> tuple[dict[Variant, F32], ...]:
    """Database and own-query descriptors of every variant, scales combined."""
    per_scale = []
    for maps in scale_maps:
        with progress_bar(len(bench.database), enabled=progress, desc="pooling") as bar:
            database = counted((maps.get(MapRequest(p)) for p in bench.database), bar)
            per_scale.append((variants.describe_all(database, len(bench.database)),
                              variants.describe_all((maps.get(r) for r in queries.values()),
                                                    len(queries))))
    return tuple({v: combine_scales([s[part][v] for s in per_scale]) for v in variants.variants}
                 for part in (0, 1))


def _score(bench: Benchmark, variants: Variants, scale_maps: list[FeatureMaps],
           queries: dict[int, MapRequest], opts: EvaluateOptions) -> list[ResultRow]:
    xb, own = _describe(bench, variants, scale_maps, queries, opts.progress)
    dims = variants.dims()
    where = [q.database_index if i not in queries else None for i, q in enumerate(bench.queries)]
    scales = opts.embedding.scales
    tag = "" if len(scales) == 1 else "@" + ",".join(f"{s:g}" for s in scales)
    request = _row_request(opts)
    rows = []
    for v in variants.variants:
        xq = _query_matrix(bench, xb[v], own[v], list(queries))
        for suffix, run in variant_runs(xq, xb[v], where, request):
            results = evaluate_benchmark(bench, method=opts.ap, scores=run.get("scores"),
                                         rankings=run.get("rankings"))
            rows.append(ResultRow.of(v.pooling + tag + suffix, v.whiten, dims[v], results))
    return rows


def _setup(opts: EvaluateOptions) -> tuple[Benchmark, Variants, list[Path]]:
    poolings = _poolings(opts.pooling)
    if opts.whiten and len(opts.embedding.scales) > 1:
        raise ConfigError("--whiten with several --scales is not supported by evaluate yet")
    if opts.dba and not opts.qe and opts.diffusion is None:
        raise ConfigError("--dba K reports +αQE+DBA (and + DBA + diffusion) rows: pass --qe K "
                          "or --diffusion too")
    diffusion_of(opts.diffusion)  # a bad spec fails before any forward pass
    if not 0 <= opts.qe <= MAX_RERANK_K or not 0 <= opts.dba <= MAX_RERANK_K:
        raise ConfigError(f"--qe and --dba must be from 0 to {MAX_RERANK_K}")
    extra = {"rotated": True} if opts.rotated else {}
    bench = load_benchmark(opts.dataset, opts.root, queries=opts.queries, **extra)
    configs = [opts.embedding.config(name, whiten=opts.whiten) for name in poolings]
    train = _train_paths(opts, bench, any(c.needs_training for c in configs))
    if opts.embedding.weights == "random":
        print("WARNING: --weights random: the network is NOT trained; mAP is meaningless. "
              "Use this for tests only.", file=sys.stderr)
    backbone = _backbone(opts, bench, configs[0].image_side)
    return bench, Variants(backbone, configs), train


def _backbone(opts: EvaluateOptions, bench: Benchmark, side: int) -> Backbone:
    """The backbone at ``--precision``; int8 is calibrated on a sample of the database."""
    n = len(bench.database)
    precision = resolve_precision(opts.precision, opts.device, images=n)
    flags = opts.embedding
    backbone = load_backbone(flags.backbone, flags.weights, device=opts.device, seed=flags.seed,
                             precision=precision)
    if precision == "int8":
        out = Path(opts.out or Path("results") / bench.name)
        cache = Path(opts.cache) if opts.cache else out / "cache"
        prepare_int8(backbone, calibration_sample(bench.database, flags.seed), max_side=side,
                     cache_dir=cache / "engines")
    return backbone


def _maps_identity(backbone: Backbone) -> str:
    """The weights identity the map cache is keyed by: fp32 maps keep their old key."""
    if backbone.precision == "fp32":
        return backbone.weights_id
    key = getattr(backbone.engine, "key", None)
    return f"{backbone.weights_id}@{backbone.precision}" + (f":{key}" if key else "")


def run_evaluate(opts: EvaluateOptions) -> int:
    start = time.perf_counter()
    bench, variants, train = _setup(opts)
    if train and opts.train_on_test:
        print(f"WARNING: {INFLATED}", file=sys.stderr)
    backbone = next(iter(variants.embedders.values())).backbone
    config = next(iter(variants.embedders.values())).config
    side = config.image_side
    out = Path(opts.out or Path("results") / bench.name)
    caches = [FeatureCache(Path(opts.cache) if opts.cache else out / "cache",
                           backbone=backbone.name, weights_id=_maps_identity(backbone), max_side=s,
                           dtype=opts.cache_dtype) for s in config.image_sides]
    scale_maps = [FeatureMaps(backbone, c, max_side=s, batch_size=opts.batch_size,
                              workers=opts.workers)
                  for c, s in zip(caches, config.image_sides, strict=True)]
    cache, maps = caches[0], scale_maps[0]  # the first scale's also learn (train images)
    queries = _query_requests(bench)
    requests = [MapRequest(p) for p in bench.database] + list(queries.values())
    extraction_s = _extract(maps, requests + [MapRequest(p) for p in train], opts.progress)
    for more in scale_maps[1:]:
        extraction_s += _extract(more, requests, opts.progress)
    fit_start = time.perf_counter()
    if train:
        fitted = [m for m in (maps.get(MapRequest(p)) for p in train) if m is not None]
        variants.fit(fitted)
    score_start = time.perf_counter()
    rows = _score(bench, variants, scale_maps, queries, opts)
    end = time.perf_counter()
    timing = {"total_s": round(end - start, 2), "extraction_s": round(extraction_s, 2),
              "fit_s": round(score_start - fit_start, 2),
              "pooling_and_search_s": round(end - score_start, 2)}
    doc = summary(opts, bench, variants, backbone.weights_id, side, cache, scale_maps, train,
                  timing)
    if opts.preset is not None:
        request = _row_request(opts)
        doc["preset_row"] = preset_row(_poolings(opts.pooling)[0], config.scales, request)
    title = (f"{bench.name}: {backbone.name} ({Path(opts.embedding.weights).name}), max side {side}"
             f"{'' if len(config.scales) == 1 else ', scales ' + str(list(config.scales))}"
             f"{' — TRAINED ON TEST' if train and opts.train_on_test else ''}")
    paths = write_results(out, doc, rows, title)
    print_rows(rows, paths["json"].parent, scale_maps, timing,
               bool(train and opts.train_on_test))
    return 0
