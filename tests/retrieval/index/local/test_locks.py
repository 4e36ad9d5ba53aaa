"""Tests for locks: readers share, writers exclude, one writing opener per directory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from retrieval.errors import ArtifactError
from retrieval.index.local._locks import DirectoryLock, ReadWriteLock


def test_readers_hold_the_lock_together() -> None:
    lock = ReadWriteLock()
    both_inside = threading.Barrier(2, timeout=10)

    def reader() -> None:
        with lock.read():
            both_inside.wait()  # raises BrokenBarrierError if the readers excluded each other

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not both_inside.broken


def test_writer_waits_for_readers_and_excludes_them() -> None:
    lock = ReadWriteLock()
    events: list[str] = []
    writer_started = threading.Event()

    def writer() -> None:
        writer_started.set()
        with lock.write():
            events.append("write")

    with lock.read():
        thread = threading.Thread(target=writer)
        thread.start()
        writer_started.wait(10)
        events.append("read done")
    thread.join(10)
    assert events == ["read done", "write"]
    with lock.write():
        events.append("again")  # released properly
    assert events[-1] == "again"


def test_directory_lock_is_exclusive(tmp_path: Path) -> None:
    first = DirectoryLock.acquire(tmp_path)
    with pytest.raises(ArtifactError, match="already open"):
        DirectoryLock.acquire(tmp_path)
    first.release()
    first.release()
    DirectoryLock.acquire(tmp_path).release()
