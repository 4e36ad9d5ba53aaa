"""``cbir index add``: embed files and folders into an existing index, in one transaction."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from indexer.argtypes import Subparsers, from_namespace, positive
from indexer.maintain import clean_leftovers
from indexer.options import RuntimeOptions, add_runtime_flags
from indexer.progress import ingest_with_progress, print_summary
from retrieval import (
    ConfigError,
    IngestReport,
    PathPlan,
    list_images,
    open_collection,
    plan_by_path,
)
from retrieval.index import IndexStore, KeepsTags, TagEdit, Trains, clean_tags

__all__ = ["AddOptions", "add_parser", "run_add", "train_if_possible"]

log = logging.getLogger("cbir")


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("add", help=help_text)
    p.add_argument("--index", required=True, help="the index directory to add to")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=None,
                   help="images per forward pass (default: 1 on cpu, where batching is slower; "
                        "16 on cuda)")
    p.add_argument("--workers", type=positive, default=None, help="image decoding threads")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress output")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG",
                   help="give every added image this tag (repeatable; files already stored "
                        "unchanged at their path get it too)")
    add_runtime_flags(p)
    p.set_defaults(options=AddOptions.from_args, run=run_add)


@dataclass(frozen=True)
class AddOptions:
    """``cbir index add``'s flags, typed."""

    index: Path
    paths: tuple[str, ...]
    runtime: RuntimeOptions
    batch_size: int | None = None
    workers: int | None = None
    progress: bool = True
    tags: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> AddOptions:
        return from_namespace(cls, ns, index=Path(ns.index), paths=tuple(ns.paths),
                              runtime=RuntimeOptions.from_args(ns), tags=clean_tags(ns.tags))


def run_add(opts: AddOptions) -> int:
    """Add files and folders in one transaction: all readable images become searchable together,
    or (interrupted, killed) none does. Unreadable files are skipped and listed, as in build.

    Idempotent per path (a path is what a folder index records): a file already stored at its
    path with the same content (sha256) is skipped and reported, so an add whose outcome is
    unknown can simply be run again; one whose content changed is embedded again and replaces
    its old record in the same transaction. Identical files at different paths stay separate
    records: removing one copy must not remove the other (the HTTP API dedupes by content).
    """
    paths: list[Path] = []
    for name in opts.paths:
        path = Path(name)
        paths.extend(list_images(path) if path.is_dir() else [path])
    run = opts.runtime
    collection = open_collection(opts.index, device=run.device, weights_file=run.weights_file,
                                 precision=run.precision, channels_last=run.channels_last,
                                 images=len(paths))
    try:
        clean_leftovers(collection.index)
        plan = plan_by_path(collection.index, [(str(p.resolve()), p.resolve()) for p in paths])
        report, seconds = ingest_with_progress(
            collection, [p for _, p in plan.todo], batch_size=opts.batch_size,
            workers=opts.workers, progress=opts.progress, atomic=True, replacing=plan.replacing,
            tags=opts.tags)
        _tag_unchanged(collection.index, plan, opts.tags)
        train_if_possible(collection.index)
    finally:
        collection.close()
    print_summary(report, seconds, opts.index)
    _print_path_outcomes(plan, report)
    for key, image_id in zip(report.added_keys, report.added, strict=True):
        print(f"{image_id}\t{key}")
    return 1 if report.failures and not report.added and not plan.unchanged else 0


def _tag_unchanged(index: IndexStore, plan: PathPlan, tags: tuple[str, ...]) -> None:
    """The files skipped as already stored get ``tags`` too (so an add run again is a no-op)."""
    ids = sorted(set(plan.unchanged.values()))
    if not tags or not ids:
        return
    if not isinstance(index, KeepsTags):
        raise ConfigError("this store keeps no tags")
    index.retag(ids, TagEdit.of(add=tags))


def train_if_possible(index: IndexStore) -> None:
    """Train an untrained IVF/PQ index once it holds enough vectors; until then the added ones
    are stored (committed above) and wait, which is said, not an error."""
    if not isinstance(index, Trains) or index.is_trained:
        return
    try:
        index.train()
    except ConfigError as exc:
        log.warning("added, but not searchable yet: %s", exc)


def _print_path_outcomes(plan: PathPlan, report: IngestReport) -> None:
    if plan.unchanged:
        print(f"skipped {len(plan.unchanged)} unchanged files already indexed at their path "
              "(same content)")
    if report.replaced:
        changed = sum(1 for key in report.added_keys if key in plan.replacing)
        print(f"replaced {changed} changed files (new content at a stored path; old ids "
              f"{', '.join(map(str, report.replaced))} removed)")
