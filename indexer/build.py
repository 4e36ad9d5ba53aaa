"""``cbir index build | add | remove | info``."""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from indexer.maintain import clean_leftovers
from indexer.options import config_from_args
from retrieval import (
    Collection,
    ConfigError,
    IngestReport,
    ManifestMismatchError,
    calibration_sample,
    config_from_manifest,
    create_collection,
    fit_embedder,
    ingest,
    list_images,
    open_collection,
)
from retrieval.features import Embedder, EmbedderConfig, resolve_precision
from retrieval.index import MANIFEST_NAME, Rerank, StoreSpec

__all__ = ["run_add", "run_build"]

log = logging.getLogger("cbir")

SKIPPED_LOG = "skipped.log"
RANDOM_BANNER = (
    "WARNING: --weights random: the network is NOT trained; similarities are meaningless. "
    "Use this for tests only."
)


def _config(args: argparse.Namespace) -> EmbedderConfig:
    return config_from_args(args, args.pooling, whiten=args.whiten)


def _weights_file(weights: str) -> str | None:
    return None if weights in ("imagenet", "random") else str(Path(weights).resolve())


def _training_sources(args: argparse.Namespace, images: list[Path]) -> list[tuple[str, Path]]:
    if args.train_images:
        pool = list_images(args.train_images)
    else:
        log.info("learning on a sample of the collection (pass --train-images for a separate set)")
        pool = images
    if len(pool) > args.train_sample:
        pool = sorted(random.Random(args.seed).sample(pool, args.train_sample))
    return [(str(p), p) for p in pool]


def _new_collection(args: argparse.Namespace, listed: list[Path] | list[str],
                    index_dir: Path) -> Collection:
    images = [p for p in listed if isinstance(p, Path)]  # URIs: --train-images is required
    config = _config(args)
    precision = resolve_precision(args.precision, args.device, images=len(listed))
    embedder = Embedder.create(config, device=args.device, precision=precision,
                               channels_last=args.channels_last)
    if precision == "int8":
        pool = list_images(args.train_images) if args.train_images else images
        embedder.prepare_int8(calibration_sample(pool, args.seed), cache_dir=None)
    if config.needs_training:
        n = fit_embedder(embedder, _training_sources(args, images), batch_size=args.batch_size,
                         workers=args.workers)
        log.info("learned the fitted state of %s%s on %d images", config.pooling,
                 " + whitening" if config.whiten else "", n)
    wanted = {"nprobe": args.nprobe, "ef_search": args.ef_search}
    rerank = Rerank(qe_k=args.qe, qe_alpha=args.qe_alpha, dba_k=args.dba,
                    dba_alpha=args.dba_alpha)
    return create_collection(index_dir, embedder, factory=args.faiss,
                             weights_file=_weights_file(args.weights),
                             search_params={k: v for k, v in wanted.items() if v is not None},
                             rerank=rerank, store=_store(args))


def _store(args: argparse.Namespace) -> StoreSpec:
    """``--store milvus --milvus-uri URI --collection NAME`` (checked before anything is done)."""
    if args.store == "faiss":
        if args.milvus_uri or args.collection:
            raise ConfigError("--milvus-uri and --collection need --store milvus")
        return StoreSpec()
    return StoreSpec("milvus", args.milvus_uri or "", args.collection or "")


def _resumed_collection(args: argparse.Namespace, index_dir: Path, images: int) -> Collection:
    collection = open_collection(index_dir, device=args.device,
                                 weights_file=args.weights_file or _weights_file(args.weights),
                                 precision=args.precision, channels_last=args.channels_last,
                                 images=images)
    stored = config_from_manifest(collection.manifest)
    asked = _config(args)
    diffs = [f"{name}: index has {getattr(stored, name)!r}, asked for {getattr(asked, name)!r}"
             for name in ("backbone", "pooling", "whiten")
             if getattr(stored, name) != getattr(asked, name)]
    if asked.max_side is not None and asked.image_side != stored.image_side:
        diffs.append(f"max_side: index has {stored.image_side}, asked for {asked.image_side}")
    if diffs:
        collection.close()
        raise ManifestMismatchError("cannot resume with other settings: " + "; ".join(diffs))
    return collection


def _list_images(args: argparse.Namespace) -> list[Path] | list[str]:
    """The images to index: a local folder, or (``--engine ray``) a URI's files (s3://, gs://…)."""
    if "://" not in args.images:
        return [p.resolve() for p in list_images(args.images)]
    if args.engine != "ray":
        raise ConfigError(f"{args.images} is a URI: object stores are read by --engine ray")
    config = _config(args)
    if (config.needs_training or args.precision in ("int8", "auto")) and not args.train_images:
        raise ConfigError("learning (a learning pooling, --whiten) or int8/auto calibration on "
                          "images in an object store needs --train-images DIR (a local folder)")
    from indexer import ray_build

    return ray_build.list_uri_images(args.images)


def run_build(args: argparse.Namespace) -> int:
    images = _list_images(args)
    if not images:
        raise ConfigError(f"no images (jpg, png, webp, gif, bmp, tif) found under {args.images}")
    if args.weights == "random":
        print(RANDOM_BANNER, file=sys.stderr)
    index_dir = Path(args.index)
    exists = (index_dir / MANIFEST_NAME).exists()
    if exists and not args.resume:
        raise ConfigError(f"{index_dir} already holds an index; use --resume to continue it, "
                          "`cbir index add` to add images, or choose a new directory")
    if index_dir.exists() and not exists and any(index_dir.iterdir()):
        raise ConfigError(f"{index_dir} exists, is not empty and is not an index directory")
    if not exists:
        _store(args)
    collection = (_resumed_collection(args, index_dir, len(images)) if exists
                  else _new_collection(args, images, index_dir))
    try:
        clean_leftovers(collection.index)
        if collection.index.images_root is None:
            root = args.images if "://" in args.images else str(Path(args.images).resolve())
            collection.index.set_images_root(root)
        present = collection.index.paths_present()
        todo = [p for p in images if str(p) not in present]
        if present:
            log.info("%d of %d images already indexed; embedding the other %d",
                     len(images) - len(todo), len(images), len(todo))
        if args.engine == "ray":
            from indexer import ray_build

            report, seconds = ray_build.ingest_on_ray(collection, todo, args)
            _log_failures(collection.path, report)
        else:
            report, seconds = _ingest_with_progress(collection, [Path(p) for p in todo], args)
        if not collection.index.is_trained:
            collection.index.train()
    finally:
        collection.close()
    _summary(report, seconds, index_dir)
    return 0


def _ingest_with_progress(
    collection: Collection, paths: list[Path], args: argparse.Namespace, *, atomic: bool = False
) -> tuple[IngestReport, float]:
    start = time.perf_counter()
    with tqdm(total=len(paths), unit="img", disable=not args.progress or None,
              dynamic_ncols=True, file=sys.stderr) as bar:
        report = ingest(collection, [(str(p), p) for p in paths], batch_size=args.batch_size,
                        workers=args.workers, on_progress=bar.update, atomic=atomic)
    _log_failures(collection.path, report)
    return report, time.perf_counter() - start


def _log_failures(index_dir: Path, report: IngestReport) -> None:
    if not report.failures:
        return
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with (index_dir / SKIPPED_LOG).open("a", encoding="utf-8") as fh:
        for failure in report.failures:
            fh.write(f"{stamp}\t{failure.error.source}\t{failure.error.reason}\n")


def _summary(report: IngestReport, seconds: float, index_dir: Path) -> None:
    n = len(report.added)
    rate = n / seconds if seconds > 0 else 0.0
    print(f"indexed {n} images in {seconds:.1f} s ({rate:.2f} images/s) into {index_dir}")
    if report.failures:
        print(f"skipped {len(report.failures)} unreadable files (listed in "
              f"{index_dir / SKIPPED_LOG}):")
        for failure in report.failures:
            print(f"  {failure.error}")


def run_add(args: argparse.Namespace) -> int:
    """Add files and folders in one transaction: all readable images become searchable together,
    or (interrupted, killed) none does. Unreadable files are skipped and listed, as in build.
    Identical files at different paths are separate records: a path is what a folder index
    records, and removing one copy must not remove the other (the HTTP API dedupes by content).
    """
    paths: list[Path] = []
    for name in args.paths:
        path = Path(name)
        paths.extend(list_images(path) if path.is_dir() else [path])
    collection = open_collection(Path(args.index), device=args.device,
                                 weights_file=args.weights_file, precision=args.precision,
                                 channels_last=args.channels_last, images=len(paths))
    try:
        clean_leftovers(collection.index)
        report, seconds = _ingest_with_progress(
            collection, [p.resolve() for p in paths], args, atomic=True)
        if not collection.index.is_trained:
            collection.index.train()
    finally:
        collection.close()
    _summary(report, seconds, Path(args.index))
    for key, image_id in zip(report.added_keys, report.added, strict=True):
        print(f"{image_id}\t{key}")
    return 1 if report.failures and not report.added else 0
