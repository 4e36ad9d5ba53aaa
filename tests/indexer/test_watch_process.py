"""``cbir index watch`` as a real process: it follows the folder (new, edited, moved and deleted
files), a restart reconciles what changed while it was down, and kill -9 in the middle of a
batch leaves a consistent index that the next start completes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from indexer.cli import main
from retrieval import sha256_hex
from tests.conftest import scene
from tests.indexer.watching import Watcher, files, folder_and_index, photo, stored, wait_until

BURST = 120


def test_a_running_watcher_follows_every_kind_of_change(tmp_path: Path) -> None:
    images, index = folder_and_index(tmp_path, n=4)
    watcher = Watcher(images, index, tmp_path / "watch.log").start()
    try:
        new = images / "new.jpg"
        scene(800, (80, 64)).save(new, "JPEG", quality=90)  # written in place, not renamed in
        saved = time.monotonic()
        wait_until(lambda: str(new.resolve()) in stored(index))
        latency = time.monotonic() - saved
        first = stored(index)[str(new.resolve())][0]

        photo(images / "new.jpg", 801)                      # edited
        wait_until(lambda: stored(index).get(str(new.resolve()), [first])[0][0] != first[0])
        edited = stored(index)[str(new.resolve())]
        assert len(edited) == 1 and edited[0][1] == sha256_hex(new.read_bytes())

        (images / "deep").mkdir()
        new.rename(images / "deep" / "moved.jpg")           # moved: same record
        moved = str((images / "deep" / "moved.jpg").resolve())
        wait_until(lambda: moved in stored(index))
        assert stored(index)[moved] == edited and str(new.resolve()) not in stored(index)

        (images / "p00.jpg").unlink()                       # deleted
        wait_until(lambda: str((images / "p00.jpg").resolve()) not in stored(index))
        assert set(stored(index)) == files(images)
    finally:
        assert watcher.stop() == 0
    out = watcher.output()
    assert "1 moved" in out and "1 re-embedded" in out and "stopped watching" in out
    print(f"file saved -> stored and searchable: {latency:.2f} s")


def test_a_restart_reconciles_what_changed_while_it_was_down(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, index = folder_and_index(tmp_path, n=4)
    Watcher(images, index, tmp_path / "a.log").start().stop()
    before = stored(index)
    photo(images / "while-down.jpg", 810)
    (images / "p01.jpg").unlink()
    photo(images / "p02.jpg", 811)
    (images / "p03.jpg").rename(images / "p03-renamed.jpg")
    watcher = Watcher(images, index, tmp_path / "b.log").start()
    try:
        after = stored(index)
        assert set(after) == files(images) and all(len(v) == 1 for v in after.values())
        assert after[str((images / "p03-renamed.jpg").resolve())] == before[
            str((images / "p03.jpg").resolve())]
        assert "reconciled" in watcher.output() and "1 added, 1 re-embedded, 1 moved, 1 removed"\
            in watcher.output()
        extra = photo(tmp_path / "elsewhere.jpg", 812)
        capsys.readouterr()
        assert main(["index", "add", "--index", str(index), str(extra), "--no-progress"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cbir index watch" in err[0], err  # one writer: the watcher
    finally:
        assert watcher.stop(signal.SIGINT) == 0


def test_kill_9_mid_batch_leaves_a_consistent_index(tmp_path: Path) -> None:
    images, index = folder_and_index(tmp_path, n=2)
    watcher = Watcher(images, index, tmp_path / "k.log", "--batch-size", "1").start()
    for i in range(BURST):
        photo(images / "burst" / f"b{i:03d}.jpg", 820 + i, (320, 240))
    time.sleep(0.5)  # past the debounce: the batch is being embedded
    watcher.stop(signal.SIGKILL)
    after_kill = stored(index)  # opens (recovers) fine; every stored image searchable
    burst = {p for p in after_kill if "/burst/" in p}
    assert all(len(v) == 1 for v in after_kill.values())
    assert len(burst) in (0, BURST), "a batch is one transaction: all of it or none"
    print(f"killed with {len(burst)} of {BURST} burst images committed")
    restarted = Watcher(images, index, tmp_path / "k2.log").start()
    try:
        final = stored(index)
        assert set(final) == files(images) and all(len(v) == 1 for v in final.values())
    finally:
        restarted.stop()


def test_polling_instead_of_kernel_events(tmp_path: Path) -> None:
    images, index = folder_and_index(tmp_path, n=1)
    watcher = Watcher(images, index, tmp_path / "p.log", "--polling").start()
    try:
        assert "(polling)" in watcher.output()
        photo(images / "polled.jpg", 830)
        wait_until(lambda: str((images / "polled.jpg").resolve()) in stored(index))
    finally:
        watcher.stop()
