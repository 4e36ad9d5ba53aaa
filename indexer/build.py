"""``cbir index build``: a folder (or, on Ray, an object store's files) into a new index.

Its parser, the typed :class:`BuildOptions` read from it once, and :func:`run_build`: list the
images, create the collection (fitting MOP/VLAD codebooks and whitening first) or ``--resume`` the
one there, then embed what is not stored yet, here (:mod:`indexer.progress`) or with
``--engine ray`` (:mod:`indexer.ray_build`).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from indexer.argtypes import Subparsers, from_namespace, positive
from indexer.maintain import clean_leftovers
from indexer.options import (
    EmbeddingOptions,
    RuntimeOptions,
    add_embedding_flags,
    add_rerank_flags,
    add_runtime_flags,
    add_search_param_flags,
)
from indexer.presets import PRESETS, given_flags, preset_overrides, track_given
from indexer.progress import ingest_with_progress, log_failures, print_summary
from indexer.ray_build import is_uri
from retrieval import (
    Collection,
    ConfigError,
    ManifestMismatchError,
    calibration_sample,
    check_index_plan,
    config_from_manifest,
    create_collection,
    fit_embedder,
    list_images,
    open_collection,
)
from retrieval.features import Embedder, EmbedderConfig, resolve_precision
from retrieval.index import (
    MANIFEST_NAME,
    Diffusion,
    KeepsGraph,
    KnowsSources,
    Rerank,
    StoreSpec,
    Trains,
)

__all__ = ["BuildOptions", "add_parser", "run_build"]

log = logging.getLogger("cbir")

RANDOM_BANNER = (
    "WARNING: --weights random: the network is NOT trained; similarities are meaningless. "
    "Use this for tests only."
)


def add_parser(sub: Subparsers, help_text: str) -> None:
    from retrieval.pooling import pooling_names

    p = sub.add_parser("build", help=help_text)
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--index", required=True, help="index directory to create (or --resume)")
    add_embedding_flags(p, one_pooling=True, pooling_default="sum",
                        pooling_help=f"one of {', '.join(pooling_names())} (default sum)")
    p.add_argument("--whiten", action="store_true", help="learn PCA-whitening")
    p.add_argument("--train-images", dest="train_images", default=None,
                   help="folder to learn whitening / MOP codebooks on (default: a sample of "
                        "--images)")
    p.add_argument("--train-sample", dest="train_sample", type=positive, default=500,
                   help="at most this many training images (default 500)")
    p.add_argument("--faiss", default="Flat",
                   help="FAISS factory string, e.g. Flat, HNSW32, IVF1024,Flat, IVF1024,PQ64")
    add_search_param_flags(p, "stored in the index (default for IVF: nprobe 16)")
    add_rerank_flags(p, build=True)
    p.add_argument("--diffusion", nargs="?", const="on", default=None, metavar="SPEC",
                   help="diffusion re-ranking as the index's default for searches (needs a "
                        "kept neighbour graph): on, or name=value pairs over the defaults, e.g. "
                        "k=30,alpha=0.95 (default: off)")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="pooling, max side, scales and re-ranking measured best for the "
                        "--backbone (docs: presets); flags given explicitly override it")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=None,
                   help="images per forward pass (default: 1 on cpu, where batching is slower; "
                        "16 on cuda)")
    p.add_argument("--workers", type=positive, default=None,
                   help="image decoding threads (default: torch's CPU threads on cpu, the CPU "
                        "count up to 8 on cuda)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted build without re-embedding stored images")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress output")
    _add_scale_out(p)
    add_runtime_flags(p)
    track_given(p)
    p.set_defaults(options=BuildOptions.from_args, run=run_build)


def _add_scale_out(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("scale-out engines (README \"Scale-out\")")
    group.add_argument("--store", default="faiss", choices=["faiss", "milvus"],
                       help="where vectors and records live: faiss (FAISS + SQLite in --index, "
                            "the default) or milvus (a Milvus collection; pip install "
                            "'cbir[milvus]')")
    group.add_argument("--milvus-uri", dest="milvus_uri", default=None,
                       help="with --store milvus: ./file.db (Milvus Lite) or http://host:19530")
    group.add_argument("--collection", default=None,
                       help="with --store milvus: the collection name")
    group.add_argument("--engine", default="local", choices=["local", "ray"],
                       help="embed here (local, the default) or on Ray Data (pip install "
                            "'cbir[ray]')")
    group.add_argument("--ray-address", dest="ray_address", default=None,
                       help="with --engine ray: auto or ray://HOST:10001 (default: a local Ray "
                            "started for this run)")
    group.add_argument("--ray-actors", dest="ray_actors", type=positive, default=None,
                       help="with --engine ray: embedding actors (default: one per GPU, else "
                            "one per 1 CPU of the cluster)")


@dataclass(frozen=True)
class BuildOptions:
    """``cbir index build``'s flags, typed."""

    images: str
    index: Path
    embedding: EmbeddingOptions
    runtime: RuntimeOptions
    pooling: str = "sum"
    whiten: bool = False
    train_images: str | None = None
    train_sample: int = 500
    faiss: str = "Flat"
    nprobe: int | None = None
    ef_search: int | None = None
    qe: int = 0
    qe_alpha: float = 3.0
    dba: int = 0
    dba_alpha: float = 3.0
    graph_k: int = 0
    batch_size: int | None = None
    workers: int | None = None
    resume: bool = False
    progress: bool = True
    store: str = "faiss"
    milvus_uri: str | None = None
    collection: str | None = None
    engine: str = "local"
    ray_address: str | None = None
    ray_actors: int | None = None
    diffusion: str | None = None
    preset: str | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> BuildOptions:
        for dest, value in preset_overrides(ns.preset, ns.backbone, given_flags(ns)).items():
            setattr(ns, dest, value)
        return from_namespace(cls, ns, index=Path(ns.index),
                              embedding=EmbeddingOptions.from_args(ns),
                              runtime=RuntimeOptions.from_args(ns))

    @property
    def config(self) -> EmbedderConfig:
        return self.embedding.config(self.pooling, whiten=self.whiten)


def _weights_file(weights: str) -> str | None:
    return None if weights in ("imagenet", "random") else str(Path(weights).resolve())


def _training_sources(opts: BuildOptions, images: list[Path]) -> list[tuple[str, Path]]:
    if opts.train_images:
        pool = list_images(opts.train_images)
    else:
        log.info("learning on a sample of the collection (pass --train-images for a separate set)")
        pool = images
    if len(pool) > opts.train_sample:
        pool = sorted(random.Random(opts.embedding.seed).sample(pool, opts.train_sample))
    return [(str(p), p) for p in pool]


def _new_collection(opts: BuildOptions, listed: list[Path] | list[str],
                    index_dir: Path) -> Collection:
    images = [p for p in listed if isinstance(p, Path)]  # URIs: --train-images is required
    config, run = opts.config, opts.runtime
    precision = resolve_precision(run.precision or "fp32", run.device, images=len(listed))
    embedder = Embedder.create(config, device=run.device, precision=precision,
                               channels_last=run.channels_last)
    planned = _planned_dim(embedder)
    if planned is not None:  # before anything is calibrated, fitted, created or embedded
        _check_plan(opts, planned, len(listed))
    if precision == "int8":
        pool = list_images(opts.train_images) if opts.train_images else images
        embedder.prepare_int8(calibration_sample(pool, opts.embedding.seed), cache_dir=None)
    if config.needs_training:
        n = fit_embedder(embedder, _training_sources(opts, images), batch_size=opts.batch_size,
                         workers=opts.workers)
        log.info("learned the fitted state of %s%s on %d images", config.pooling,
                 " + whitening" if config.whiten else "", n)
    if planned is None:  # the dimension is known once fitted: still before anything is created
        _check_plan(opts, embedder.dim, len(listed))
    wanted = {"nprobe": opts.nprobe, "ef_search": opts.ef_search}
    rerank = Rerank(qe_k=opts.qe, qe_alpha=opts.qe_alpha, dba_k=opts.dba,
                    dba_alpha=opts.dba_alpha)
    return create_collection(index_dir, embedder, factory=opts.faiss,
                             weights_file=_weights_file(opts.embedding.weights),
                             search_params={k: v for k, v in wanted.items() if v is not None},
                             rerank=rerank, store=_store(opts), graph_k=_graph_k(opts),
                             diffusion=_diffusion(opts.diffusion), preset=opts.preset)


def _diffusion(spec: str | None) -> Diffusion | None:
    return None if spec is None else Diffusion.parse(spec)


def _graph_k(opts: BuildOptions) -> int:
    """``--graph-k``, raised to what the index's default diffusion reads: its candidate
    neighbours, plus one for ``/similar`` (the image searched with drops out of its rows)."""
    d = _diffusion(opts.diffusion)
    return max(opts.graph_k, 0 if d is None else max(d.k, d.candidates) + 1)


def _planned_dim(embedder: Embedder) -> int | None:
    """The dimension the vectors will have if known before fitting (None: MOP/VLAD's is not)."""
    try:
        pooled = embedder.pooled_dim
    except ConfigError:
        return None
    whitening = embedder.whitening
    return pooled if whitening is None else whitening.requested_dim or pooled


def _check_plan(opts: BuildOptions, dim: int, images: int) -> None:
    if opts.store == "faiss":
        check_index_plan(dim, opts.faiss, images=images, where=opts.images)
    elif opts.dba:
        raise ConfigError(f"--dba {opts.dba} needs --store faiss: every add or remove changes the "
                          "augmented vectors of its neighbours, which Milvus cannot rewrite "
                          "atomically while other replicas write")


def _store(opts: BuildOptions) -> StoreSpec:
    """``--store milvus --milvus-uri URI --collection NAME`` (checked before anything is done)."""
    if opts.store == "faiss":
        if opts.milvus_uri or opts.collection:
            raise ConfigError("--milvus-uri and --collection need --store milvus")
        return StoreSpec()
    return StoreSpec("milvus", opts.milvus_uri or "", opts.collection or "")


def _resumed_collection(opts: BuildOptions, index_dir: Path, images: int) -> Collection:
    run = opts.runtime
    collection = open_collection(index_dir, device=run.device,
                                 weights_file=run.weights_file
                                 or _weights_file(opts.embedding.weights),
                                 precision=run.precision, channels_last=run.channels_last,
                                 images=images)
    stored = config_from_manifest(collection.manifest)
    asked = opts.config
    diffs = [f"{name}: index has {getattr(stored, name)!r}, asked for {getattr(asked, name)!r}"
             for name in ("backbone", "pooling", "whiten")
             if getattr(stored, name) != getattr(asked, name)]
    if asked.max_side is not None and asked.image_side != stored.image_side:
        diffs.append(f"max_side: index has {stored.image_side}, asked for {asked.image_side}")
    if diffs:
        collection.close()
        raise ManifestMismatchError("cannot resume with other settings: " + "; ".join(diffs))
    return collection


def _list_images(opts: BuildOptions) -> list[Path] | list[str]:
    """The images to index: a local folder, or (``--engine ray``) a URI's files (s3://, gs://…)."""
    if not is_uri(opts.images):
        return [p.resolve() for p in list_images(opts.images)]
    if opts.engine != "ray":
        raise ConfigError(f"{opts.images} is a URI: object stores are read by --engine ray")
    needs_training = opts.config.needs_training
    if (needs_training or opts.runtime.precision in ("int8", "auto")) and not opts.train_images:
        raise ConfigError("learning (a learning pooling, --whiten) or int8/auto calibration on "
                          "images in an object store needs --train-images DIR (a local folder)")
    from indexer import ray_build

    return ray_build.list_uri_images(opts.images)


def _open_for_build(opts: BuildOptions, images: list[Path] | list[str]) -> Collection:
    """The collection to build into: a new one, or (``--resume``) the one already there."""
    index_dir = opts.index
    exists = (index_dir / MANIFEST_NAME).exists()
    if exists and not opts.resume:
        raise ConfigError(f"{index_dir} already holds an index; use --resume to continue it, "
                          "`cbir index add` to add images, or choose a new directory")
    if index_dir.exists() and not exists and any(index_dir.iterdir()):
        raise ConfigError(f"{index_dir} exists, is not empty and is not an index directory")
    if exists:
        return _resumed_collection(opts, index_dir, len(images))
    _store(opts)
    return _new_collection(opts, images, index_dir)


def run_build(opts: BuildOptions) -> int:
    images = _list_images(opts)
    if not images:
        raise ConfigError(f"no images (jpg, png, webp, gif, bmp, tif) found under {opts.images}")
    if opts.embedding.weights == "random":
        print(RANDOM_BANNER, file=sys.stderr)
    collection = _open_for_build(opts, images)
    keeps = isinstance(collection.index, KeepsGraph) and collection.index.graph_k > 0
    if collection.manifest.diffusion is not None and not keeps:
        log.warning("this index keeps no neighbour graph: searches with its default diffusion "
                    "will be refused until it is rebuilt with a graph (--graph-k)")
    try:
        clean_leftovers(collection.index)
        if isinstance(collection.index, KnowsSources) and collection.index.images_root is None:
            root = opts.images if is_uri(opts.images) else str(Path(opts.images).resolve())
            collection.index.set_images_root(root)
        present = (collection.index.paths_present()
                   if isinstance(collection.index, KnowsSources) else set())
        todo = [p for p in images if str(p) not in present]
        if present:
            log.info("%d of %d images already indexed; embedding the other %d",
                     len(images) - len(todo), len(images), len(todo))
        if isinstance(collection.index, Trains) and not collection.index.is_trained:
            m = collection.manifest  # a resumed IVF that all of them could not train: say so now
            check_index_plan(m.dim, m.faiss_factory, images=collection.index.count + len(todo),
                             metric=m.metric, where=opts.images)
        if opts.engine == "ray":
            from indexer import ray_build

            report, seconds = ray_build.ingest_on_ray(
                collection, todo, address=opts.ray_address, actors=opts.ray_actors,
                weights_file=opts.runtime.weights_file, progress=opts.progress)
            log_failures(collection.path, report)
        else:
            report, seconds = ingest_with_progress(
                collection, [Path(p) for p in todo], batch_size=opts.batch_size,
                workers=opts.workers, progress=opts.progress)
        if isinstance(collection.index, Trains) and not collection.index.is_trained:
            collection.index.train()
    finally:
        collection.close()
    print_summary(report, seconds, opts.index)
    return 0
