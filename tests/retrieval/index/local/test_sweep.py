"""Leftovers of killed writes in an uploads folder are removed; recorded and foreign files stay."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from retrieval import ConfigError
from retrieval.index import ImageIndex, NewImage, sweep_files
from tests.retrieval.index.samples import D, manifest


def test_sweep_removes_temporaries_and_unrecorded_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    kept_sha, orphan_sha = hashlib.sha256(b"kept").hexdigest(), hashlib.sha256(b"o").hexdigest()
    (data / "trips" / "2024").mkdir(parents=True)  # uploads given a folder
    kept = data / f"{kept_sha}.jpg"
    kept_below = data / "trips" / f"{kept_sha}.png"
    leftovers = [data / f"{orphan_sha}.png", data / f".{orphan_sha}.png.k2j4.tmp",
                 data / "trips" / "2024" / f"{orphan_sha}.png"]
    foreign = [data / "holiday.jpg", data / "notes.tmp", data / "trips" / "2024" / "a.jpg"]
    for path in [kept, kept_below, *leftovers, *foreign]:
        path.write_bytes(b"x")
    with ImageIndex.create(tmp_path / "index", manifest()) as index:
        index.add([NewImage(str(p.resolve()), kept_sha, 4, 4) for p in (kept, kept_below)],
                  np.eye(2, D, dtype=np.float32))
        report = sweep_files(index, data)
    assert (report.temporaries, report.orphans) == (1, 2)
    files = sorted(p for p in data.rglob("*") if p.is_file())
    assert files == sorted([kept, kept_below, *foreign])
    with ImageIndex.open(tmp_path / "index", read_only=True) as reader, \
            pytest.raises(ConfigError, match="for writing"):
        sweep_files(reader, data)
