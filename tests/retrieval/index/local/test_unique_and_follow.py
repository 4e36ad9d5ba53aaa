"""Idempotent adds (one transaction, content dedupe, request keys) and read-only followers."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import ConfigError
from retrieval.index import ImageIndex
from tests.retrieval.index.samples import images, manifest, unit_vectors


def test_add_unique_skips_stored_content_and_replays_keys(tmp_path: Path) -> None:
    with ImageIndex.create(tmp_path / "idx", manifest()) as index:
        first = index.add_unique(images(3), unit_vectors(3, 0))
        assert [a.duplicate for a in first.added] == [False] * 3 and not first.replayed
        again = index.add_unique(images(4, start=1), unit_vectors(4, 1), request_key="k",
                                 fingerprint="f")
        assert [a.duplicate for a in again.added] == [True, True, False, False]
        assert [a.id for a in again.added[:2]] == [a.id for a in first.added[1:]]
        assert index.count == index.ntotal == 5
        replay = index.add_unique(images(4, start=1), unit_vectors(4, 1), request_key="k",
                                  fingerprint="f")
        assert replay.replayed and replay.added == again.added and index.count == 5
        assert index.saved_outcome("k", "f") == replay
        with pytest.raises(ConfigError, match="Idempotency-Key"):
            index.add_unique(images(1, start=9), unit_vectors(1, 2), request_key="k",
                             fingerprint="other")
        expired = index.add_unique(images(1, start=9), unit_vectors(1, 2), request_key="k",
                                   fingerprint="other", key_ttl_s=1e-9)
        assert not expired.replayed and index.count == 6


def test_a_read_only_index_follows_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    xb = unit_vectors(40, 3)
    with ImageIndex.create(path, manifest()) as writer:
        ids = writer.add(images(10), xb[:10])
        reader = ImageIndex.open(path, read_only=True)
        assert not reader.refresh() and reader.ntotal == 10
        new = writer.add(images(10, start=10), xb[10:20])
        writer.remove(ids[:3])
        assert reader.refresh() and reader.ntotal == 17
        assert reader.search(xb[15:16], 1)[1][0, 0] == new[5]
        writer.add(images(20, start=20), xb[20:])
        writer.snapshot()  # prunes the log past the reader: it reloads instead
        assert reader.refresh() and reader.ntotal == 37
        assert reader.search(xb[30:31], 1)[1][0, 0] == 31  # ids start at 1
        reader.close()
