"""``cbir index sync`` (one reconcile of a folder with an index, for cron) and ``cbir index watch``
(the same reconcile on start, then the folder followed with watchdog, debounced and batched).

The reconcile itself is the library's (:func:`retrieval.sync_folder`, :func:`retrieval.plan_sync`);
here are the flags, the event loop and the lines printed. Stamps (size, mtime, sha256 last seen
per file) are kept in ``<index>/folder-stamps.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from indexer.add import train_if_possible
from indexer.argtypes import Subparsers, from_namespace, positive
from indexer.maintain import clean_leftovers
from indexer.options import RuntimeOptions, add_runtime_flags
from indexer.progress import log_failures
from retrieval import (
    ArtifactError,
    Collection,
    ConfigError,
    StoredFiles,
    SyncReport,
    load_stamps,
    open_collection,
    save_stamps,
    sync_folder,
    sync_paths,
)

__all__ = ["STAMPS_NAME", "SyncOptions", "WatchOptions", "add_sync_parser", "add_watch_parser",
           "run_sync", "run_watch"]

log = logging.getLogger("cbir")

STAMPS_NAME = "folder-stamps.json"
MAX_DELAY_FACTOR = 10  # a batch waits at most this many debounce periods while events keep coming


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, 3600], got {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR",
                   help="the folder of images to keep the index in step with (searched "
                        "recursively)")
    p.add_argument("--index", required=True, metavar="DIR",
                   help="the index directory (built already)")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=None, metavar="N",
                   help="images per forward pass (default: 1 on cpu, 16 on cuda)")
    p.add_argument("--workers", type=positive, default=None, metavar="N",
                   help="image decoding threads")
    add_runtime_flags(p)


def add_sync_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("sync", help=help_text)
    _common(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(options=SyncOptions.from_args, run=run_sync)


def add_watch_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("watch", help=help_text)
    _common(p)
    p.add_argument("--polling", action="store_true",
                   help="poll the folder instead of kernel events (network shares, some "
                        "container mounts); inotify/FSEvents/ReadDirectoryChanges otherwise")
    p.add_argument("--debounce", type=_seconds, default=0.5, metavar="SECONDS",
                   help="wait until the folder has been quiet this long before a batch "
                        f"(default 0.5; a batch waits at most {MAX_DELAY_FACTOR} times this)")
    p.set_defaults(options=WatchOptions.from_args, run=run_watch)


@dataclass(frozen=True)
class SyncOptions:
    """``cbir index sync``'s flags, typed."""

    images: Path
    index: Path
    runtime: RuntimeOptions
    batch_size: int | None = None
    workers: int | None = None
    json: bool = False

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> SyncOptions:
        return from_namespace(cls, ns, images=Path(ns.images), index=Path(ns.index),
                              runtime=RuntimeOptions.from_args(ns))


@dataclass(frozen=True)
class WatchOptions:
    """``cbir index watch``'s flags, typed."""

    images: Path
    index: Path
    runtime: RuntimeOptions
    batch_size: int | None = None
    workers: int | None = None
    polling: bool = False
    debounce: float = 0.5

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> WatchOptions:
        return from_namespace(cls, ns, images=Path(ns.images), index=Path(ns.index),
                              runtime=RuntimeOptions.from_args(ns))


def _open(opts: SyncOptions | WatchOptions) -> Collection:
    if not opts.images.is_dir():
        raise ConfigError(f"image folder {str(opts.images)!r} does not exist or is no folder")
    run = opts.runtime
    collection = open_collection(opts.index, device=run.device, weights_file=run.weights_file,
                                 precision=run.precision, channels_last=run.channels_last)
    clean_leftovers(collection.index)
    return collection


def _summary(report: SyncReport, seconds: float) -> str:
    c = report.counts()
    return (f"{c['added']} added, {c['reembedded']} re-embedded, {c['moved']} moved, "
            f"{c['removed']} removed, {c['unchanged']} unchanged, {c['failed']} unreadable "
            f"({seconds:.1f} s)")


def _finish(collection: Collection, report: SyncReport) -> None:
    log_failures(collection.path, report.ingest)
    if report.ingest.added:
        train_if_possible(collection.index)


def _print_failures(report: SyncReport) -> None:
    for failure in report.ingest.failures:
        print(f"  skipped {failure.error}", flush=True)


def run_sync(opts: SyncOptions) -> int:
    """One reconcile: new files added, changed ones re-embedded, moved ones re-pointed, vanished
    ones removed (:mod:`retrieval._sync`)."""
    collection = _open(opts)
    start = time.perf_counter()
    try:
        report, _ = sync_folder(collection, opts.images, opts.index / STAMPS_NAME,
                                batch_size=opts.batch_size, workers=opts.workers,
                                exclude=opts.index)
        _finish(collection, report)
    finally:
        collection.close()
    seconds = time.perf_counter() - start
    if opts.json:
        out: dict[str, Any] = {"index": str(opts.index), "images": str(opts.images),
                               **report.counts(), "seconds": round(seconds, 3),
                               "added_ids": report.ingest.added,
                               "failed_files": [str(f.key) for f in report.ingest.failures]}
        print(json.dumps(out, indent=2))
    else:
        print(f"synced {opts.images} into {opts.index}: {_summary(report, seconds)}")
        _print_failures(report)
    return 0


class _Events:
    """The paths watchdog named since the last batch, and when (any thread puts, one takes)."""

    IGNORED = frozenset({"opened", "closed_no_write"})

    def __init__(self, skip: str) -> None:
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._first = self._last = 0.0
        self._skip = skip
        self.wake = threading.Event()

    def dispatch(self, event: Any) -> None:  # watchdog's handler interface
        if event.event_type in self.IGNORED or (event.is_directory
                                                 and event.event_type == "modified"):
            return  # a folder's "modified" comes with the events of the files that changed
        names = [event.src_path, getattr(event, "dest_path", "")]
        paths = {n.decode() if isinstance(n, bytes) else str(n) for n in names if n}
        paths = {p for p in paths if not (p + "/").startswith(self._skip)}
        if not paths:
            return
        log.debug("%s %s", event.event_type, " -> ".join(sorted(paths)))
        with self._lock:
            now = time.monotonic()
            self._first = self._first if self._paths else now
            self._last = now
            self._paths |= paths
        self.wake.set()

    def take(self, debounce: float) -> set[str]:
        """The paths, once quiet for ``debounce`` s (or waiting too long); else nothing."""
        with self._lock:
            now = time.monotonic()
            due = self._paths and (now - self._last >= debounce
                                   or now - self._first >= MAX_DELAY_FACTOR * debounce)
            if not due:
                return set()
            paths, self._paths = self._paths, set()
            return paths


def _observer(root: Path, events: _Events, polling: bool) -> tuple[Any, str]:
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    observer: Any = PollingObserver(timeout=1.0) if polling else Observer()
    try:
        observer.schedule(events, str(root), recursive=True)
        observer.start()
    except OSError as exc:  # e.g. the inotify watch limit: poll instead
        if polling:
            raise ConfigError(f"cannot watch {root}: {exc}") from exc
        log.warning("kernel events unavailable for %s (%s); polling instead", root, exc)
        return _observer(root, events, True)
    kind = type(observer).__name__.replace("Observer", "").lower()  # inotify, fsevents...
    return observer, "polling" if polling else kind


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def run_watch(opts: WatchOptions) -> int:
    """Reconcile, then follow the folder until Ctrl-C or SIGTERM: each batch of events is one
    :func:`retrieval.sync_paths` (one transaction on the local engine, steps on Milvus: see
    :mod:`retrieval._sync`). Whatever stops it, the index stays consistent; the next start
    reconciles what changed meanwhile."""
    _stop_on_sigterm()
    root = opts.images.resolve()
    collection = _open(opts)
    stamps_file = opts.index / STAMPS_NAME
    try:
        start = time.perf_counter()
        report, stored = sync_folder(collection, root, stamps_file, batch_size=opts.batch_size,
                                     workers=opts.workers, exclude=opts.index)
        _finish(collection, report)
        print(f"reconciled {root}: {_summary(report, time.perf_counter() - start)}", flush=True)
        _print_failures(report)
        _follow(collection, root, stored, opts)
    except KeyboardInterrupt:
        print("cbir: stopped watching; the index is consistent and the next start reconciles "
              "what changed meanwhile", file=sys.stderr)
    finally:
        collection.close()
    return 0


def _follow(collection: Collection, root: Path, stored: StoredFiles, opts: WatchOptions) -> None:
    events = _Events(str(opts.index.resolve()).rstrip("/") + "/")
    stamps_file = opts.index / STAMPS_NAME
    stamps = load_stamps(stamps_file)
    logging.getLogger("watchdog").setLevel(logging.ERROR)  # its stop-time chatter
    observer, kind = _observer(root, events, opts.polling)
    print(f"watching {root} ({kind}); Ctrl-C to stop", flush=True)
    try:
        while True:
            events.wake.wait(timeout=opts.debounce / 2)
            events.wake.clear()
            if not observer.is_alive():
                raise ArtifactError(f"watching {root} stopped (the folder vanished, or the "
                                    "observer failed); start again: it reconciles first")
            paths = events.take(opts.debounce)
            if not paths:
                continue
            start = time.perf_counter()
            report = sync_paths(collection, root, stored, paths, stamps,
                                batch_size=opts.batch_size, workers=opts.workers,
                                exclude=opts.index)
            if report.plan.empty and not report.ingest.failures:
                continue
            _finish(collection, report)
            save_stamps(stamps_file, stamps)
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {_summary(report, time.perf_counter() - start)}", flush=True)
            _print_failures(report)
    finally:
        observer.stop()
        observer.join(timeout=5)
