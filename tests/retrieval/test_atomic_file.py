"""Tests for retrieval._atomic: replace whole files or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval._atomic import remove_stale_temporaries, write_atomic
from retrieval.errors import StorageFullError
from tests.small_disk import FILLER, fill, small_disk


def test_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two, longer")
    assert target.read_bytes() == b"two, longer"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_a_full_disk_is_a_storage_full_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        target = disk / "data.bin"
        write_atomic(target, b"old")
        filler = fill(disk)
        with pytest.raises(StorageFullError, match=r"data\.bin"):
            write_atomic(target, b"new" * 10_000)
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in disk.iterdir()) == sorted(["data.bin", FILLER])
        filler.unlink()
        write_atomic(target, b"new" * 10_000)
        assert target.read_bytes() == b"new" * 10_000


def test_remove_stale_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    (tmp_path / ".data.bin.x1y2.tmp").write_bytes(b"partial")
    (tmp_path / ".other.bin.x1y2.tmp").write_bytes(b"not ours")
    remove_stale_temporaries(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.bin.x1y2.tmp"]
