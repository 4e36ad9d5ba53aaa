"""The kept neighbour graph of a local index against :func:`knn_graph` of the stored vectors:
after any sequence of adds, removes and replaces, after a reopen, after changes made by another
process; a failed add leaves it as it was; DBA reads it instead of searching on open."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.errors import ConfigError
from retrieval.index import ImageIndex, KeepsGraph, Manifest, NewImage
from retrieval.rerank import NeighbourGraph, knn_graph

D = 6


def manifest(**kw: object) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=64, pooling="sum", dim=D,
                    **kw)  # type: ignore[arg-type]


def grid(rng: np.random.Generator, n: int, d: int = D) -> np.ndarray:
    """Vectors on a coarse grid: every cosine is exact in float32 and float64, and there are
    many exact ties and duplicates (the ties must go to the lower id)."""
    return rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(n, d)).astype(np.float32)


def items(start: int, n: int) -> list[NewImage]:
    return [NewImage(path=f"img{i}.jpg", sha256=f"{i:064x}", width=8, height=8)
            for i in range(start, start + n)]


def reference(index: ImageIndex) -> NeighbourGraph:
    ids = np.asarray(index.ids_after(0, 10**9), dtype=np.int64)
    return knn_graph(index.stored_vectors(ids.tolist()), ids, index.graph_k)


def assert_kept(index: ImageIndex) -> None:
    ref = reference(index)
    kept = index.neighbours(ref.ids.tolist())
    np.testing.assert_array_equal(kept.I, ref.I)
    np.testing.assert_allclose(kept.D, ref.D, rtol=0, atol=1e-12)


OPS = st.lists(st.tuples(st.sampled_from(["add", "remove", "replace"]),
                         st.integers(1, 7), st.integers(0, 2**32 - 1)), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, k=st.integers(1, 5), dba=st.booleans())
def test_graph_equals_a_fresh_exact_one_after_any_changes(tmp_path_factory: pytest.TempPathFactory,
                                                          ops: list[tuple[str, int, int]], k: int,
                                                          dba: bool) -> None:
    path = tmp_path_factory.mktemp("g") / "index"
    m = manifest(graph_k=k, dba_k=min(k, 2) if dba else 0)
    made = 0
    with ImageIndex.create(path, m) as index:
        for op, n, seed in ops:
            rng = np.random.default_rng(seed)
            present = index.ids_after(0, 10**9)
            if op == "add" or not present:
                index.add(items(made, n), grid(rng, n))
                made += n
            elif op == "remove":
                index.remove(rng.choice(present, size=min(n, len(present)), replace=False).tolist())
            else:
                old = rng.choice(present, size=min(n, len(present)), replace=False).tolist()
                index.replace(old, items(made, 2), grid(rng, 2))
                made += 2
            assert_kept(index)
    with ImageIndex.open(path, read_only=True) as reopened:
        assert_kept(reopened)


CHILD = """
import sys
import numpy as np
from retrieval.index import ImageIndex, NewImage
rng = np.random.default_rng(7)
with ImageIndex.open(sys.argv[1]) as index:
    ids = index.ids_after(0, 10**9)
    index.remove(ids[::3])
    x = rng.normal(size=(25, 16)).astype(np.float32)
    index.add([NewImage(path=f"c{i}.jpg", sha256=f"{i + 1000:064x}", width=8, height=8)
               for i in range(25)], x / np.linalg.norm(x, axis=1, keepdims=True))
"""


def test_graph_kept_by_another_process_reads_back_exact(tmp_path: Path) -> None:
    path = tmp_path / "index"
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    m = Manifest(backbone="vgg16", weights="random:seed=0", max_side=64, pooling="sum", dim=16,
                 graph_k=6)
    with ImageIndex.create(path, m) as index:
        index.add(items(0, 60), x / np.linalg.norm(x, axis=1, keepdims=True))
    subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, timeout=120,
                   cwd=Path(__file__).resolve().parents[4])
    with ImageIndex.open(path) as index:
        assert index.count == 60 - 20 + 25
        assert_kept(index)


def test_a_failed_add_leaves_records_and_graph_as_they_were(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with ImageIndex.create(tmp_path / "i", manifest(graph_k=3, dba_k=2)) as index:
        ids = index.add(items(0, 20), grid(rng, 20))
        before = index.neighbours(ids)
        searched = index.search(grid(rng, 4), 5)
        with sqlite3.connect(tmp_path / "i" / "store.sqlite") as other:  # fail mid-transaction,
            other.execute("CREATE TRIGGER boom AFTER INSERT ON graph WHEN NEW.id > 20 "
                          "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")  # after some rows
        with pytest.raises(sqlite3.DatabaseError, match="disk on fire"):
            index.add(items(20, 3), grid(rng, 3))
        assert index.count == 20
        after = index.neighbours(ids)
        np.testing.assert_array_equal(after.I, before.I)
        np.testing.assert_array_equal(after.D, before.D)
        assert_kept(index)
        with sqlite3.connect(tmp_path / "i" / "store.sqlite") as other:
            assert other.execute("SELECT COUNT(*), MAX(id) FROM graph").fetchone() == (20, 20)
            other.execute("DROP TRIGGER boom")
        ids += index.add(items(20, 3), grid(rng, 3))  # the index goes on working
        assert_kept(index)
        assert index.search(grid(np.random.default_rng(5), 20)[:0], 5)[0].shape == (0, 5)
        del searched


def test_dba_index_opens_from_the_kept_graph(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(120, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:10] + 0.1
    with ImageIndex.create(tmp_path / "i", manifest(dba_k=3)) as index:
        ids = index.add(items(0, 120), x)
        index.remove(ids[5:15])
        searched = index.search(q, 8)
    with caplog.at_level(logging.INFO, logger="retrieval.index"), \
            ImageIndex.open(tmp_path / "i") as index:
        assert "built the neighbour graph" not in caplog.text
        assert index.graph_k == 3
        for got, want in zip(index.search(q, 8), searched, strict=True):
            np.testing.assert_array_equal(got, want)
    # an index made before the graph existed: built once on open, stored, then read back
    with sqlite3.connect(tmp_path / "i" / "store.sqlite") as db:
        db.execute("DROP TABLE graph")
        db.execute("DELETE FROM meta WHERE key = 'graph_k'")
    (tmp_path / "i" / "index.faiss").unlink()
    for built in (True, False):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="retrieval.index"), \
                ImageIndex.open(tmp_path / "i") as index:
            assert ("built the neighbour graph" in caplog.text) is built
            assert_kept(index)
            for got, want in zip(index.search(q, 8), searched, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("dba_k", [0, 2])
def test_a_reader_follows_the_writers_graph(tmp_path: Path, dba_k: int) -> None:
    rng = np.random.default_rng(11)
    with ImageIndex.create(tmp_path / "i", manifest(graph_k=3, dba_k=dba_k)) as writer:
        ids = writer.add(items(0, 30), grid(rng, 30))
        with ImageIndex.open(tmp_path / "i", read_only=True) as reader:
            writer.remove(ids[:7])
            writer.add(items(30, 9), grid(rng, 9))
            assert reader.refresh()
            assert_kept(reader)
            writer.add(items(39, 4), grid(rng, 4))
            writer.snapshot()  # prunes the log past the reader: it reloads
            writer.remove(ids[7:8])
            assert reader.refresh()
            assert_kept(reader)
            assert reader.count == 35
            q = grid(rng, 3)
            for got, want in zip(reader.search(q, 5), writer.search(q, 5), strict=True):
                np.testing.assert_array_equal(got, want)


def test_keeps_graph_capability(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with ImageIndex.create(tmp_path / "g", manifest(graph_k=4)) as index:
        assert isinstance(index, KeepsGraph) and index.graph_k == 4
        ids = index.add(items(0, 3), grid(rng, 3))
        rows = index.neighbours([ids[2], 999, ids[0]])
        assert rows.ids.tolist() == [ids[2], 999, ids[0]] and rows.k == 4
        assert rows.I[1].tolist() == [-1] * 4 and np.isneginf(rows.D[1]).all()
        assert (rows.I[0, 2:] == -1).all()  # two others only
    with ImageIndex.create(tmp_path / "none", manifest()) as index:
        assert index.graph_k == 0
        with pytest.raises(ConfigError, match="--graph-k"):
            index.neighbours([1])
    assert Manifest.from_dict({k: v for k, v in manifest().to_dict().items()
                               if k != "graph_k"}).graph_k == 0  # older manifests
