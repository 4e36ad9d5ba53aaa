"""Ingest under a progress bar, ``skipped.log`` and the summary line (build and add)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from retrieval import Collection, IngestReport, ingest

__all__ = ["SKIPPED_LOG", "ingest_with_progress", "log_failures", "print_summary"]

SKIPPED_LOG = "skipped.log"


def ingest_with_progress(
    collection: Collection, paths: list[Path], *, batch_size: int | None, workers: int | None,
    progress: bool, atomic: bool = False,
) -> tuple[IngestReport, float]:
    """Ingest ``paths`` under a progress bar; unreadable files go to ``skipped.log``."""
    start = time.perf_counter()
    with tqdm(total=len(paths), unit="img", disable=not progress or None,
              dynamic_ncols=True, file=sys.stderr) as bar:
        report = ingest(collection, [(str(p), p) for p in paths], batch_size=batch_size,
                        workers=workers, on_progress=bar.update, atomic=atomic)
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
