"""``ImageIndex.replace``: old records out and new ones in, one transaction, FAISS (and DBA) kept
exact — what ``cbir index add`` of a changed file relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import ConfigError
from retrieval.index import ImageIndex, Store
from tests.retrieval.index.samples import brute_force, images, manifest, unit_vectors


@pytest.mark.parametrize("dba_k", [0, 3])
def test_replace_equals_remove_then_add_and_survives_a_reopen(tmp_path: Path, dba_k: int) -> None:
    xb, fresh, xq = unit_vectors(60, 0), unit_vectors(2, 1), unit_vectors(5, 2)
    path = tmp_path / "idx"
    with ImageIndex.create(path, manifest(dba_k=dba_k)) as index:
        ids = index.add(images(60), xb)
        seq = index.store.last_seq()
        new = index.replace([ids[3], ids[7], 9999], images(2, start=100), fresh)
        assert index.count == index.ntotal == 60
        assert [r.path for r in index.records(new)] == ["img/00100.jpg", "img/00101.jpg"]
        assert not index.records([ids[3], ids[7]])
        live = index.search(xq, 10)
        changes = [(c.op, c.image_id) for c in index.store.changes_since(seq)]
    assert changes == [("remove", ids[3]), ("remove", ids[7]), ("add", new[0]), ("add", new[1])]
    keep = [i for i in range(60) if i not in (3, 7)]
    all_ids = np.asarray([ids[i] for i in keep] + new, dtype=np.int64)
    all_xb = np.concatenate([xb[keep], fresh])
    if dba_k == 0:
        assert np.array_equal(live[1], brute_force(all_ids, all_xb, xq, 10)[1])
    with ImageIndex.open(path) as reopened:  # rebuilt from the store: the same answers
        again = reopened.search(xq, 10)
    assert np.array_equal(again[1], live[1])
    np.testing.assert_allclose(again[0], live[0], atol=1e-5)


def test_store_replace_with_bad_input_removes_nothing(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s.sqlite", dim=8)
    [old] = store.add(images(1), unit_vectors(1, 0, d=8))
    with pytest.raises(ConfigError, match="1 rows for 2 items"):
        store.replace([old], images(2), unit_vectors(1, 1, d=8))
    assert [r.id for r in store.get([old])] == [old]
    store.close()
