"""The local ImageIndex: FAISS results against numpy brute force, the directory, the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from retrieval.errors import ArtifactError, ConfigError, ManifestMismatchError, NotFoundError
from retrieval.index import MANIFEST_NAME, ImageIndex, Manifest
from retrieval.index.local._snapshot import SNAPSHOT_NAME, read_snapshot
from tests.retrieval.index.samples import D, brute_force, images, manifest, unit_vectors


@pytest.fixture
def flat(tmp_path: Path) -> Iterator[ImageIndex]:
    with ImageIndex.create(tmp_path / "idx", manifest()) as index:
        yield index


def test_flat_search_equals_brute_force(flat: ImageIndex) -> None:
    xb, xq = unit_vectors(300, 0), unit_vectors(20, 1)
    ids = np.asarray(flat.add(images(300), xb), dtype=np.int64)
    distances, labels = flat.search(xq, 10)
    expected_d, expected_i = brute_force(ids, xb, xq, 10)
    assert labels.dtype == np.int64 and distances.dtype == np.float32
    assert np.array_equal(labels, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-5, atol=1e-6)


def recall(found: Any, expected: Any) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, expected,
                                                                        strict=True)]))


@pytest.mark.parametrize(("factory", "params", "minimum"), [
    ("HNSW32", {"ef_search": 128}, 0.98), ("IVF16,Flat", {"nprobe": 16}, 1.0)])
def test_approximate_indexes_agree_with_brute_force(
        tmp_path: Path, factory: str, params: dict[str, int], minimum: float) -> None:
    xb, xq = unit_vectors(600, 2), unit_vectors(25, 3)
    with ImageIndex.create(tmp_path / "idx", manifest(factory)) as index:
        ids = np.asarray(index.add(images(600), xb), dtype=np.int64)
        index.train()
        index.set_search_params(**params)
        _, labels = index.search(xq, 10)
    assert recall(labels, brute_force(ids, xb, xq, 10)[1]) >= minimum


def test_ivf_pq_waits_for_training_then_searches(tmp_path: Path) -> None:
    xb = unit_vectors(1200, 4)
    with ImageIndex.create(tmp_path / "idx", manifest("IVF8,PQ4")) as index:
        index.add(images(200), xb[:200])
        assert (index.is_trained, index.ntotal, index.count) == (False, 0, 200)
        with pytest.raises(ArtifactError, match="train"):
            index.search(xb[:1], 5)
        with pytest.raises(ConfigError, match="at least 256"):
            index.train()
        ids = np.asarray(index.add(images(1000, 200), xb[200:]), dtype=np.int64)
        index.train(sample=1000)
        index.set_search_params(nprobe=8)
        assert (index.is_trained, index.ntotal) == (True, 1200)
        _, labels = index.search(xb[300:340], 10)
    assert recall(labels, brute_force(np.arange(1, 1201), xb, xb[300:340], 10)[1]) >= 0.5
    assert np.mean(labels[:, 0] == ids[100:140]) >= 0.9  # each database vector finds itself


def test_close_and_reopen_give_the_same_results(tmp_path: Path) -> None:
    xb, xq = unit_vectors(200, 5), unit_vectors(10, 6)
    with ImageIndex.create(tmp_path / "idx", manifest()) as index:
        index.add(images(200), xb)
        before = index.search(xq, 7)
    with ImageIndex.open(tmp_path / "idx", expect=manifest()) as index:
        after = index.search(xq, 7)
        assert (index.count, index.ntotal, index.d) == (200, 200, D)
        assert index.size_on_disk() > 200 * D * 4
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0])


def test_k_beyond_ntotal_pads(flat: ImageIndex) -> None:
    distances, labels = flat.search(unit_vectors(2, 7), 3)
    assert labels.tolist() == [[-1] * 3] * 2 and np.all(distances == -np.inf)
    flat.add(images(2), unit_vectors(2, 8))
    distances, labels = flat.search(unit_vectors(1, 9), 4)
    assert sorted(labels[0, :2].tolist()) == [1, 2] and labels[0, 2:].tolist() == [-1, -1]
    assert np.isfinite(distances[0, :2]).all() and np.all(distances[0, 2:] == -np.inf)
    hits = flat.search_records(unit_vectors(1, 9), 4)[0]
    assert [h.id for h in hits] == labels[0, :2].tolist()
    assert hits[0].record.path == f"img/{hits[0].id - 1:05d}.jpg"
    assert hits[0].score == pytest.approx(float(distances[0, 0]))


@pytest.mark.parametrize(("xq", "k", "message"), [
    (np.zeros((2, D + 1), np.float32), 3, "columns"),
    (np.zeros(D, np.float32), 3, "reshape"),
    (np.array([["a"] * D]), 3, "real numbers"),
    (np.full((1, D), np.nan, np.float32), 3, "NaN"),
    (np.zeros((1, D), np.float32), 0, "k must"),
    (np.zeros((1, D), np.float32), True, "k must"),
])
def test_bad_queries_are_config_errors(flat: ImageIndex, xq: Any, k: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        flat.search(xq, k)


def test_query_conversion(flat: ImageIndex) -> None:
    xb = unit_vectors(50, 10)
    flat.add(images(50), xb)
    xq = unit_vectors(4, 11)
    expected = flat.search(xq, 5)[1]
    assert np.array_equal(flat.search(xq.astype(np.float64), 5)[1], expected)
    assert np.array_equal(flat.search(np.asfortranarray(xq), 5)[1], expected)
    assert flat.search(np.zeros((0, D)), 5)[1].shape == (0, 5)


def test_ids_stable_and_never_reused(tmp_path: Path) -> None:
    xb = unit_vectors(6, 12)
    with ImageIndex.create(tmp_path / "idx", manifest()) as index:
        assert index.add(images(3), xb[:3]) == [1, 2, 3]
        assert index.remove([3, 1, 99]) == [3, 1]
        assert index.remove([99]) == []
        assert index.add(images(1, 3), xb[3:4]) == [4]
        with pytest.raises(NotFoundError):
            index.get(3)
    with ImageIndex.open(tmp_path / "idx") as index:
        assert index.add(images(1, 4), xb[4:5]) == [5]
        assert index.get(2).path == "img/00001.jpg"
        assert [r.id for r in index.records([5, 3, 2])] == [5, 2]
        labels = index.search(xb, 6)[1]
        assert set(labels[labels >= 0].tolist()) == {2, 4, 5}


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF4,Flat"])
def test_removed_ids_never_come_back(tmp_path: Path, factory: str) -> None:
    xb = unit_vectors(200, 13)
    with ImageIndex.create(tmp_path / "idx", manifest(factory)) as index:
        index.add(images(200), xb)
        index.train()
        index.set_search_params(**({"nprobe": 4} if "IVF" in factory else {}))
        gone = set(range(1, 201, 4))
        index.remove(sorted(gone))
        assert index.ntotal == index.count == 150
        labels = index.search(xb, 20)[1]
        assert not gone & set(labels.ravel().tolist())
        survivors = np.asarray(sorted(set(range(1, 201)) - gone))
        assert np.mean(labels[survivors - 1, 0] == survivors) >= 0.95
    with ImageIndex.open(tmp_path / "idx") as index:
        assert index.ntotal == 150
        assert not gone & set(index.search(xb, 20)[1].ravel().tolist())


def test_hnsw_tombstones_persist_and_compact(tmp_path: Path) -> None:
    xb = unit_vectors(100, 14)
    with ImageIndex.create(tmp_path / "idx", manifest("HNSW32")) as index:
        index.add(images(100), xb)
        index.remove(range(1, 11))
        index.snapshot()
        assert read_snapshot(tmp_path / "idx" / SNAPSHOT_NAME).tombstones == tuple(range(1, 11))
        index.remove(range(11, 31))  # now 30% tombstoned: the next snapshot rebuilds the graph
    snapshot = read_snapshot(tmp_path / "idx" / SNAPSHOT_NAME)
    assert snapshot.tombstones == ()
    with ImageIndex.open(tmp_path / "idx") as index:
        assert index.ntotal == 70
        labels = index.search(xb, 10)[1]
        assert labels.min() > 30 and np.array_equal(labels[30:, 0], np.arange(31, 101))


def test_create_refuses_existing_or_foreign_directories(tmp_path: Path) -> None:
    with ImageIndex.create(tmp_path / "idx", manifest()) as index:
        index.add(images(2), unit_vectors(2, 15))
    with pytest.raises(ArtifactError, match="exist_ok"):
        ImageIndex.create(tmp_path / "idx", manifest())
    with ImageIndex.create(tmp_path / "idx", manifest(), exist_ok=True) as index:
        assert index.count == 2
    with pytest.raises(ManifestMismatchError, match="faiss_factory"):
        ImageIndex.create(tmp_path / "idx", manifest("HNSW32"), exist_ok=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not empty"):
        ImageIndex.create(tmp_path / "other", manifest(), exist_ok=True)


def test_invalid_factory_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NotAnIndex"):
        ImageIndex.create(tmp_path / "idx", manifest("NotAnIndex"))
    with pytest.raises(ConfigError, match="PQ5"):
        ImageIndex.create(tmp_path / "idx", manifest("PQ5"))  # 16 is not a multiple of 5
    with ImageIndex.create(tmp_path / "idx", manifest("IDMap2,Flat")) as index:
        index.add(images(3), unit_vectors(3, 16))
        assert index.search(unit_vectors(1, 16), 1)[1][0, 0] == 1


def test_open_checks_the_manifest(tmp_path: Path) -> None:
    ImageIndex.create(tmp_path / "idx", manifest()).close()
    with pytest.raises(ManifestMismatchError, match="pooling: index has 'gem', asked for 'sum'"):
        ImageIndex.open(tmp_path / "idx", expect=Manifest(**{**manifest().to_dict(),
                                                             "pooling": "sum"}))
    (tmp_path / "idx" / MANIFEST_NAME).write_text('{"backbone": 3')
    with pytest.raises(ArtifactError, match=MANIFEST_NAME):
        ImageIndex.open(tmp_path / "idx")
    with pytest.raises(ArtifactError, match="not an index directory"):
        ImageIndex.open(tmp_path)


def test_one_writer_many_readers(tmp_path: Path) -> None:
    xb = unit_vectors(5, 17)
    with ImageIndex.create(tmp_path / "idx", manifest()) as writer:
        writer.add(images(5), xb)
        with pytest.raises(ArtifactError, match="already open"):
            ImageIndex.open(tmp_path / "idx")
        with ImageIndex.open(tmp_path / "idx", read_only=True) as reader:
            assert reader.search(xb[:1], 1)[1][0, 0] == 1 and reader.read_only
            with pytest.raises(ConfigError, match="read-only"):
                reader.add(images(1), xb[:1])
    ImageIndex.open(tmp_path / "idx").close()  # the lock went with the writer
    closed = ImageIndex.open(tmp_path / "idx")
    closed.close()
    with pytest.raises(ArtifactError, match="closed"):
        closed.search(xb, 1)


def test_searches_while_adding(tmp_path: Path) -> None:
    xb = unit_vectors(400, 18)
    errors: list[BaseException] = []
    stop = threading.Event()
    with ImageIndex.create(tmp_path / "idx", manifest("HNSW16")) as index:
        index.add(images(40), xb[:40])

        def search() -> None:
            try:
                while not stop.is_set():
                    for hits in index.search_records(xb[::37], 5):
                        assert all(1 <= h.id <= 400 and h.record.id == h.id for h in hits)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        readers = [threading.Thread(target=search) for _ in range(3)]
        for reader in readers:
            reader.start()
        for start in range(40, 400, 40):
            index.add(images(40, start), xb[start:start + 40])
            index.remove([start])
        stop.set()
        for reader in readers:
            reader.join()
        assert errors == []
        assert index.count == index.ntotal == 400 - 9
        survivors = np.setdiff1d(np.arange(1, 401), np.arange(41, 400, 40))
        labels = index.search(xb[survivors - 1], 1)[1][:, 0]
        assert np.mean(labels == survivors) >= 0.95


def test_search_params_from_the_manifest_apply_on_every_open(tmp_path: Path) -> None:
    xb, xq = unit_vectors(600, 20), unit_vectors(25, 21)
    exact = brute_force(np.arange(1, 601), xb, xq, 10)[1]
    with ImageIndex.create(tmp_path / "all", manifest("IVF16,Flat",
                                                      search_params={"nprobe": 16})) as index:
        index.add(images(600), xb)
        index.train()
        assert index.search_params == {"nprobe": 16}
        assert recall(index.search(xq, 10)[1], exact) == 1.0
    with ImageIndex.open(tmp_path / "all", read_only=True) as index:
        assert index.search_params == {"nprobe": 16}
        assert recall(index.search(xq, 10)[1], exact) == 1.0  # every list probed: exact
        index.set_search_params(nprobe=1)  # an override for this session only
        assert recall(index.search(xq, 10)[1], exact) < 0.9
    with ImageIndex.open(tmp_path / "all", read_only=True) as index:
        assert index.search_params == {"nprobe": 16}


def test_search_params_that_do_not_apply_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nprobe does not apply"):
        ImageIndex.create(tmp_path / "idx", manifest(search_params={"nprobe": 4}))
    assert not (tmp_path / "idx").exists()
    with pytest.raises(ConfigError, match="search_params"):
        manifest("IVF16,Flat", search_params={"nprobe": 0})
    with pytest.raises(ConfigError, match="search_params"):
        manifest("HNSW16", search_params={"efSearch": 8})
    ImageIndex.create(tmp_path / "idx", manifest("HNSW16", search_params={"ef_search": 8})).close()
    data = (tmp_path / "idx" / MANIFEST_NAME).read_text()
    (tmp_path / "idx" / MANIFEST_NAME).write_text(data.replace('"ef_search"', '"nprobe"'))
    with pytest.raises(ArtifactError, match="search_params: nprobe does not apply"):
        ImageIndex.open(tmp_path / "idx")
    (tmp_path / "idx" / MANIFEST_NAME).write_text(data)
    ImageIndex.open(tmp_path / "idx").close()  # the failed open released the directory lock


@pytest.mark.parametrize(("factory", "defaults"), [
    ("Flat", {}), ("HNSW16", {}), ("IVF16,Flat", {"nprobe": 16}),
    ("PCA8,IVF4,Flat", {"nprobe": 16})])
def test_create_builds_the_faiss_index_once_and_takes_its_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory: str,
        defaults: dict[str, int]) -> None:
    built: list[str] = []
    real = faiss.index_factory

    def counted(d: int, spec: str, metric: int) -> faiss.Index:
        built.append(spec)
        return real(d, spec, metric)

    monkeypatch.setattr(faiss, "index_factory", counted)
    with ImageIndex.create(tmp_path / "idx", manifest(factory)) as index:
        assert built == [factory]
        assert dict(index.manifest.search_params) == index.search_params == defaults
    assert Manifest.load(tmp_path / "idx").search_params == defaults
    asked = manifest(factory, search_params={"nprobe": 2}) if defaults else manifest(factory)
    with ImageIndex.create(tmp_path / "asked", asked) as index:
        assert index.search_params == dict(asked.search_params)  # what the manifest says wins
