"""RepointsRecords and ImportsRecords on both engines (FAISS+SQLite and Milvus Lite): a moved
file's record keeps its id, vector and time; imported records keep theirs (tags too), and later
adds get ids above them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval import ConfigError
from retrieval.index import (
    FollowsWriter,
    ImageRecord,
    ImportsRecords,
    RepointsRecords,
    create_index,
    open_index,
)
from tests.retrieval.index.samples import brute_force, images, lite_or_faiss, manifest, unit_vectors


@pytest.mark.parametrize("kind", ["faiss", "milvus-lite"])
def test_repoint_keeps_id_vector_and_time(kind: str, tmp_path: Path) -> None:
    with create_index(tmp_path / "i", manifest(), lite_or_faiss(kind, tmp_path)) as index:
        assert isinstance(index, RepointsRecords)
        xb = unit_vectors(5, 0)
        ids = index.add(images(5), xb)
        before = index.get(ids[2])
        assert index.repoint({ids[2]: "moved/x.jpg", 999_999: "nowhere.jpg"}) == [ids[2]]
        after = index.get(ids[2])
        assert after.path == "moved/x.jpg" and after.id == before.id
        assert (after.sha256, after.added_at) == (before.sha256, before.added_at)
        np.testing.assert_array_equal(index.stored_vectors([ids[2]]), xb[2:3])
        assert index.search(xb[2:3], 1)[1][0, 0] == ids[2] and index.count == 5
        assert "moved/x.jpg" in index.paths_present()  # type: ignore[attr-defined]
        with pytest.raises(ConfigError):
            index.repoint({ids[0]: ""})


def test_a_read_only_follower_sees_a_repoint_at_once(tmp_path: Path) -> None:
    with create_index(tmp_path / "i", manifest()) as writer:
        ids = writer.add(images(3), unit_vectors(3, 1))
        with open_index(tmp_path / "i", read_only=True) as reader:
            assert isinstance(reader, FollowsWriter)
            writer.repoint({ids[0]: "elsewhere.jpg"})
            assert reader.get(ids[0]).path == "elsewhere.jpg"


@pytest.mark.parametrize("kind", ["faiss", "milvus-lite"])
def test_import_keeps_ids_and_later_adds_go_above(kind: str, tmp_path: Path) -> None:
    xb = unit_vectors(4, 2)
    records = [ImageRecord(i, f"p/{i}.jpg", f"{i:064x}", 8, 6, 1000.0 + i,
                           ("sea", "trip") if i == 10 else ())
               for i in (3, 10, 11, 40)]
    with create_index(tmp_path / "i", manifest(), lite_or_faiss(kind, tmp_path)) as index:
        assert isinstance(index, ImportsRecords)
        index.import_records(records, xb)
        assert index.records([3, 10, 11, 40]) == records
        expected_d, expected_i = brute_force(np.asarray([3, 10, 11, 40]), xb, xb, 4)
        distances, labels = index.search(xb, 4)
        assert np.array_equal(labels, expected_i)
        np.testing.assert_allclose(distances, expected_d, rtol=1e-5, atol=1e-5)
        with pytest.raises(ConfigError, match="already stored"):
            index.import_records(records[:1], xb[:1])
        new = index.add(images(2), unit_vectors(2, 3))
        assert min(new) > 40 and len(set(new)) == 2 and index.count == 6


def test_import_keeps_the_graph_exact_and_dba_applied(tmp_path: Path) -> None:
    """A migration into an index that keeps a graph (and DBA) enters the imported records in it,
    as an add would: the graph equals a fresh exact build, the search sees augmented vectors."""
    from retrieval.index import KeepsGraph
    from retrieval.rerank import dba, knn_graph

    xb = unit_vectors(12, 5)
    ids = np.arange(2, 26, 2, dtype=np.int64)
    records = [ImageRecord(int(i), f"p/{i}.jpg", f"{i:064x}", 8, 6, 1000.0) for i in ids]
    with create_index(tmp_path / "i", manifest(graph_k=3, dba_k=2, dba_alpha=3.0)) as index:
        index.import_records(records, xb)
        assert isinstance(index, KeepsGraph)
        kept, fresh = index.neighbours(ids.tolist()), knn_graph(xb, ids, 3)
        assert np.array_equal(kept.I, fresh.I)
        np.testing.assert_allclose(kept.D, fresh.D, atol=1e-6)
        augmented = dba(xb, 2, 3.0)
        expected_d, expected_i = brute_force(ids, augmented, xb, 5)
        distances, labels = index.search(xb, 5)
        assert np.array_equal(labels, expected_i)
        np.testing.assert_allclose(distances, expected_d, atol=1e-5)
