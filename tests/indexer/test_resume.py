"""Kill `cbir index build` part-way (SIGKILL, then Ctrl-C), resume, and check the final index."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, scene

N = 24


def stored(index: Path) -> int:
    db = index / "store.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def build(images: Path, index: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "indexer", "index", "build", "--images", str(images),
            "--index", str(index), "--backbone", "vgg16", "--weights", "random",
            "--max-side", "96", "--batch-size", "1", "--workers", "1", "--no-progress", *extra]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def interrupt_after(
    proc: subprocess.Popen[str], index: Path, rows: int, sig: int
) -> tuple[int, str]:
    deadline = time.monotonic() + 240
    while stored(index) < rows:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "build made no progress"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return stored(index), err


@pytest.mark.slow
def test_killed_build_resumes_without_duplicates(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(N):
        scene(1000 + i, (96, 72)).save(images / f"{i:03d}.jpg")
    index = tmp_path / "index"

    first, _ = interrupt_after(build(images, index), index, 5, signal.SIGKILL)
    assert 5 <= first < N, "the build finished before it could be killed"

    proc = build(images, index, "--resume")
    second, err = interrupt_after(proc, index, first + 3, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    assert first < second < N

    done = build(images, index, "--resume")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert f"{N - second} of" not in out and "indexed" in out

    with sqlite3.connect(index / "store.sqlite") as conn:
        paths = Counter(p for (p,) in conn.execute("SELECT path FROM images"))
    assert len(paths) == N and set(paths.values()) == {1}

    query = images / "017.jpg"
    result = subprocess.run(
        [sys.executable, "-m", "indexer", "search", "--index", str(index), str(query), "-k", "3",
         "--json"], cwd=REPO, capture_output=True, text=True, check=True)
    hits = json.loads(result.stdout)["results"]
    assert hits[0]["path"] == str(query.resolve()) and hits[0]["score"] == pytest.approx(1, 1e-5)
    assert len({h["id"] for h in hits}) == 3
