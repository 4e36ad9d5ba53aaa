"""A folder of generated photos, an index built over it, and ``cbir index watch`` run as a real
subprocess (what the watch tests and the watcher + server test share; not a test module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from indexer.cli import main
from retrieval.index import open_index
from tests.conftest import REPO, scene

BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]
START_TIMEOUT_S = 120.0
SEEN_WITHIN_S = 30.0


def photo(path: Path, seed: int, size: tuple[int, int] = (80, 64)) -> Path:
    """A generated JPEG at ``path`` (written beside it, then renamed in: one whole file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    scene(seed, size).save(partial, "JPEG", quality=90)
    partial.replace(path)
    return path


def folder_and_index(root: Path, n: int = 6) -> tuple[Path, Path]:
    images = root / "photos"
    for i in range(n):
        photo(images / f"p{i:02d}.jpg", 700 + i)
    index = root / "index"
    assert main(["index", "build", "--images", str(images), "--index", str(index), *BUILD]) == 0
    return images, index


def stored(index: Path) -> dict[str, list[tuple[int, str, float]]]:
    """path -> ``(id, sha256, added_at)`` of its records, read as a keyless server reads them;
    checks that every stored image is searchable."""
    with open_index(index, read_only=True) as opened:
        assert opened.ntotal == opened.count
        records = opened.records(opened.ids_after(0, 100_000))
    out: dict[str, list[tuple[int, str, float]]] = {}
    for r in records:
        out.setdefault(r.path, []).append((r.id, r.sha256, r.added_at))
    return out


def files(images: Path) -> set[str]:
    return {str(p.resolve()) for p in images.rglob("*.jpg") if not p.name.startswith(".")}


def wait_until(check: Callable[[], bool], timeout: float = SEEN_WITHIN_S) -> float:
    """Seconds until ``check()`` holds (polled every 50 ms); AssertionError after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not seen within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


class Watcher:
    """``python -m indexer index watch`` in a subprocess, its output in a log file."""

    def __init__(self, images: Path, index: Path, log: Path, *extra: str) -> None:
        self.args = [sys.executable, "-m", "indexer", "index", "watch", "--images", str(images),
                     "--index", str(index), "--debounce", "0.2", *extra]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Watcher:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, cwd=REPO, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.wait_for("watching ", START_TIMEOUT_S)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = SEEN_WITHIN_S, count: int = 1) -> None:
        def seen() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited {self.proc.returncode}:\n{self.output()}")
            return self.output().count(text) >= count
        wait_until(seen, timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
