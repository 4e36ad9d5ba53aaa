"""Tests for snapshot: the header travels with the payload and damage is detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import ArtifactError
from retrieval.index.local._snapshot import SNAPSHOT_NAME, Snapshot, read_snapshot, write_snapshot


def write(path: Path, payload: bytes = b"\x00faiss\nbytes\xff", seq: int = 42) -> None:
    write_snapshot(path, payload, seq=seq, store_uuid="u1", d=8, factory="Flat",
                   metric="inner_product", tombstones=[9, 3])


def test_round_trip(tmp_path: Path) -> None:
    write(tmp_path / SNAPSHOT_NAME)
    assert read_snapshot(tmp_path / SNAPSHOT_NAME) == Snapshot(
        seq=42, store_uuid="u1", d=8, factory="Flat", metric="inner_product", tombstones=(3, 9),
        payload=b"\x00faiss\nbytes\xff")
    assert [p.name for p in tmp_path.iterdir()] == [SNAPSHOT_NAME]


def test_rewrite_replaces_whole_file(tmp_path: Path) -> None:
    write(tmp_path / SNAPSHOT_NAME, b"a" * 1000, seq=1)
    write(tmp_path / SNAPSHOT_NAME, b"b", seq=2)
    snapshot = read_snapshot(tmp_path / SNAPSHOT_NAME)
    assert (snapshot.seq, snapshot.payload) == (2, b"b")


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda b: b"", "no valid header"),
    (lambda b: b"\x93NUMPY" + b, "no valid header"),
    (lambda b: b.replace(b"cbir-faiss-snapshot", b"something-else"), "no valid header"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"extra", "truncated"),
    (lambda b: b.replace(b"\x00faiss", b"\x00fai5s"), "damaged"),
    (lambda b: b.replace(b'"seq":42', b'"seq":"x"'), "malformed header"),
])
def test_damage_is_an_artifact_error(tmp_path: Path, mangle: object, message: str) -> None:
    path = tmp_path / SNAPSHOT_NAME
    write(path)
    path.write_bytes(mangle(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=message):
        read_snapshot(path)


def test_missing_file_is_not_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_snapshot(tmp_path / SNAPSHOT_NAME)
