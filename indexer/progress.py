"""Progress (a bar, or plain lines where the terminal has no width), ``skipped.log`` and the
summary line (build, add, evaluate, demo)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO, TypeVar

from tqdm import tqdm

from retrieval import Collection, IngestReport, ingest

__all__ = ["MIN_BAR_COLUMNS", "SKIPPED_LOG", "Progress", "counted", "ingest_with_progress",
           "log_failures", "print_summary", "progress_bar"]

SKIPPED_LOG = "skipped.log"
MIN_BAR_COLUMNS = 40  # narrower (a terminal that reports 0 columns): plain lines instead
PLAIN_EVERY_S = 5.0
T = TypeVar("T")


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


class _PlainLines:
    """``12/250 images (4%), 3.1 images/s``: a line every few seconds and one at the end."""

    def __init__(self, total: int, desc: str | None, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.what = f"{desc}: " if desc else ""
        self.done, self.start = 0, time.perf_counter()
        self.printed_at, self.printed = self.start, -1

    def update(self, n: int = 1) -> None:
        self.done += n
        if time.perf_counter() - self.printed_at >= PLAIN_EVERY_S:
            self.line()

    def line(self) -> None:
        now = time.perf_counter()
        rate = self.done / (now - self.start) if now > self.start else 0.0
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        print(f"{self.what}{self.done}/{self.total} images{pct}, {rate:.1f} images/s",
              file=self.stream, flush=True)
        self.printed_at, self.printed = now, self.done


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


@contextmanager
def progress_bar(total: int, *, enabled: bool = True, desc: str | None = None,
                 stream: TextIO | None = None) -> Iterator[Progress]:
    """A tqdm bar on a terminal wide enough for one, plain lines on one that reports no width
    (0 columns), nothing where ``stream`` (default stderr) is no terminal or not ``enabled``."""
    out = sys.stderr if stream is None else stream
    if not enabled or not out.isatty():
        yield _Silent()
    elif _columns(out) < MIN_BAR_COLUMNS:
        plain = _PlainLines(total, desc, out)
        yield plain
        if plain.printed != plain.done:
            plain.line()
    else:
        with tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True, file=out) as bar:
            yield bar


def counted(items: Iterable[T], bar: Progress) -> Iterator[T]:
    """``items``, counting each on ``bar`` as it is taken."""
    for item in items:
        yield item
        bar.update(1)


def ingest_with_progress(
    collection: Collection, paths: list[Path], *, batch_size: int | None, workers: int | None,
    progress: bool, atomic: bool = False, replacing: Mapping[str, Sequence[int]] | None = None,
    tags: Sequence[str] = (),
) -> tuple[IngestReport, float]:
    """Ingest ``paths`` under a progress bar; unreadable files go to ``skipped.log``."""
    start = time.perf_counter()
    with progress_bar(len(paths), enabled=progress) as bar:
        report = ingest(collection, [(str(p), p) for p in paths], batch_size=batch_size,
                        workers=workers, on_progress=bar.update, atomic=atomic,
                        replacing=replacing, tags=tags)
    log_failures(collection.path, report)
    return report, time.perf_counter() - start


def log_failures(index_dir: Path, report: IngestReport) -> None:
    """Append the report's unreadable files to ``<index>/skipped.log``."""
    if not report.failures:
        return
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with (index_dir / SKIPPED_LOG).open("a", encoding="utf-8") as fh:
        for failure in report.failures:
            fh.write(f"{stamp}\t{failure.error.source}\t{failure.error.reason}\n")


def print_summary(report: IngestReport, seconds: float, index_dir: Path) -> None:
    n = len(report.added)
    rate = n / seconds if seconds > 0 else 0.0
    print(f"indexed {n} images in {seconds:.1f} s ({rate:.2f} images/s) into {index_dir}")
    if report.failures:
        print(f"skipped {len(report.failures)} unreadable files (listed in "
              f"{index_dir / SKIPPED_LOG}):")
        for failure in report.failures:
            print(f"  {failure.error}")
