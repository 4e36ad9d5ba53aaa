"""An index with DBA: incremental adds/removes give the top-10 of a fresh build and of a
brute-force αQE + DBA; αQE search and search by stored id against brute-force numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import NotFoundError
from retrieval.index import ImageIndex, Manifest, NewImage, search_hits, similar_hits
from tests.retrieval.rerank.references import brute_dba, expanded, ranked

D = 16


def manifest(**kw: object) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=64, pooling="sum", dim=D,
                    **kw)  # type: ignore[arg-type]


def unit(n: int, seed: int) -> np.ndarray:
    x = np.abs(np.random.default_rng(seed).normal(size=(n, D))) ** 3
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def items(keys: range) -> list[NewImage]:
    return [NewImage(path=f"img{i}.jpg", sha256=f"{i:064x}", width=8, height=8) for i in keys]


def top10(index: ImageIndex, xq: np.ndarray, row_of: dict[int, int]) -> list[list[int]]:
    """Each query's top 10 as rows of ``x``; ``row_of`` maps an id to the row of ``x`` it was
    added from (and its record's path names that row)."""
    out = []
    for hits in search_hits(index, xq, 10):
        rows = [row_of[h.id] for h in hits]
        assert [h.record.path for h in hits] == [f"img{r}.jpg" for r in rows]
        out.append(rows)
    return out


def brute_top10(x: np.ndarray, live: list[int], q: np.ndarray, k: int,
                alpha: float) -> list[list[int]]:
    """αQE(k) + DBA(k) top 10 over rows ``live`` of ``x``, loop by loop (no kernel code)."""
    aug = brute_dba(x[live].astype(np.float64), k, alpha)
    result = []
    for v in q.astype(np.float64):
        s = aug @ v
        nn = [n for _, n in ranked([(float(t), n) for n, t in enumerate(s)])[:k]]
        e = expanded(v, [(float(s[n]), aug[n]) for n in nn], alpha)
        result.append([live[n] for _, n in ranked([(float(t), n)
                                                   for n, t in enumerate(aug @ e)])[:10]])
    return result


def test_incremental_dba_equals_fresh_build(tmp_path: Path) -> None:
    x, q = unit(80, 0), unit(20, 1)
    m = manifest(dba_k=2, qe_k=2)
    with ImageIndex.create(tmp_path / "inc", m) as inc:
        ids = inc.add(items(range(0, 40)), x[:40])
        gone = inc.remove([ids[3], ids[17], ids[39]])
        ids += inc.add(items(range(40, 70)), x[40:70])
        gone += inc.remove([ids[45], ids[50]])
        ids += inc.add(items(range(70, 80)), x[70:])
        live = [i for i in range(80) if ids[i] not in gone]
        incremental = top10(inc, q, {image_id: r for r, image_id in enumerate(ids)})
    assert incremental == brute_top10(x, live, q, 2, 3.0)
    with ImageIndex.create(tmp_path / "fresh", m) as fresh:
        fresh_ids = fresh.add([items(range(80))[i] for i in live], x[live])
        assert top10(fresh, q, dict(zip(fresh_ids, live, strict=True))) == incremental
        # FAISS holds exactly the DBA of the live raw vectors
        np.testing.assert_allclose(fresh.indexed_vectors(list(range(1, len(live) + 1))),
                                   brute_dba(x[live].astype(np.float64), 2, 3.0),
                                   atol=1e-6)
    with ImageIndex.open(tmp_path / "inc") as reopened:  # recomputed from the store on open
        assert top10(reopened, q, {i: r for r, i in enumerate(ids)}) == incremental


def test_aqe_search_matches_brute_force(tmp_path: Path) -> None:
    x, q = unit(50, 2), unit(5, 3)
    with ImageIndex.create(tmp_path / "i", manifest(qe_k=3, qe_alpha=2.0)) as index:
        index.add(items(range(50)), x)
        hits = search_hits(index, q, 5)
        plain = search_hits(index, q, 5, qe_k=0)
    for r in range(5):
        s = x @ q[r]
        nn = np.argsort(-s)[:3]
        v = q[r] + sum(s[i] ** 2 * x[i] for i in nn)
        expected = np.argsort(-(x @ (v / np.linalg.norm(v))))[:5] + 1
        assert [h.id for h in hits[r]] == expected.tolist()
        assert [h.id for h in plain[r]] == (np.argsort(-s)[:5] + 1).tolist()


def test_similar_uses_the_stored_vector_and_leaves_itself_out(tmp_path: Path) -> None:
    x = unit(30, 4)
    with ImageIndex.create(tmp_path / "i", manifest()) as index:
        index.add(items(range(30)), x)
        hits = similar_hits(index, 7, 4)
        expected = [int(i) + 1 for i in np.argsort(-(x @ x[6])) if i != 6][:4]
        assert [h.id for h in hits] == expected
        with pytest.raises(NotFoundError):
            similar_hits(index, 999, 4)


def test_dba_on_hnsw_filters_removed_and_rescores_changed(tmp_path: Path) -> None:
    """HNSW cannot remove or replace a vector: removed ones are tombstoned, changed ones
    re-scored until the snapshot rebuilds the graph; the top 10 are still brute-force DBA's."""
    x, q = unit(80, 5), unit(20, 6)
    m = manifest(dba_k=2, qe_k=2, faiss_factory="HNSW8", search_params={"ef_search": 256})
    with ImageIndex.create(tmp_path / "h", m) as index:
        ids = index.add(items(range(0, 50)), x[:50])
        gone = index.remove([ids[3], ids[17], ids[30]])
        ids += index.add(items(range(50, 80)), x[50:])
        live = [i for i in range(80) if ids[i] not in gone]
        row_of = {image_id: r for r, image_id in enumerate(ids)}
        assert top10(index, q, row_of) == brute_top10(x, live, q, 2, 3.0)
    with ImageIndex.open(tmp_path / "h") as reopened:  # the close rebuilt the HNSW graph
        assert reopened.ntotal == len(live)
        assert top10(reopened, q, row_of) == brute_top10(x, live, q, 2, 3.0)


def test_dba_on_ivf_waits_for_training_then_equals_brute_force(tmp_path: Path) -> None:
    x, q = unit(120, 7), unit(10, 8)
    m = manifest(dba_k=2, qe_k=2, faiss_factory="IVF4,Flat", search_params={"nprobe": 4})
    with ImageIndex.create(tmp_path / "ivf", m) as index:
        ids = index.add(items(range(0, 100)), x[:100])
        gone = index.remove([ids[10], ids[20]])
        index.train()  # the stored vectors waited; now FAISS holds their DBA vectors
        ids += index.add(items(range(100, 120)), x[100:])
        gone += index.remove([ids[105]])
        live = [i for i in range(120) if ids[i] not in gone]
        row_of = {image_id: r for r, image_id in enumerate(ids)}
        assert index.ntotal == len(live)
        assert top10(index, q, row_of) == brute_top10(x, live, q, 2, 3.0)
    with ImageIndex.open(tmp_path / "ivf") as reopened:
        assert top10(reopened, q, row_of) == brute_top10(x, live, q, 2, 3.0)
