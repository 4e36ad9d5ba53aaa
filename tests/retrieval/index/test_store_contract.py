"""The store protocol's contract, run against every engine: FAISS+SQLite, Milvus Lite and a
Milvus server (the session's one, see :mod:`indexer.milvus_server`).

Each test gets a fresh index through :func:`create_index` and checks it against numpy: add,
remove, search (brute force), search filtered by ids, records, reopen, fitted state, manifest
mismatch refused, concurrent searches while adding; then which optional capabilities each engine
declares, and that a declared one behaves the same on both.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import ArtifactError, ManifestMismatchError, NotFoundError
from retrieval.index import (
    AugmentsVectors,
    CountsFolders,
    DedupesContent,
    FollowsWriter,
    IndexStore,
    KeepsLayouts,
    KeepsRequestKeys,
    KeepsTags,
    KnowsSources,
    SelectsRecords,
    StoreSpec,
    Trains,
    create_index,
    open_index,
    store_spec,
)
from tests.retrieval.index.samples import brute_force, images, manifest, unit_vectors

ENGINES = ["faiss", "milvus-lite",
           pytest.param("milvus-server", marks=pytest.mark.milvus_server)]
CAPABILITIES = {"dedupe": DedupesContent, "request_keys": KeepsRequestKeys,
                "sources": KnowsSources, "training": Trains, "following": FollowsWriter,
                "dba": AugmentsVectors, "layouts": KeepsLayouts, "selects": SelectsRecords,
                "tags": KeepsTags, "folders": CountsFolders}
MILVUS = {"dedupe", "request_keys", "layouts", "sources", "selects", "tags", "folders"}
DECLARED = {"faiss": set(CAPABILITIES), "milvus-lite": MILVUS, "milvus-server": MILVUS}


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
    pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")
    return str(tmp_path_factory.mktemp("milvus") / "contract.db")


def spec_for(engine: str, request: pytest.FixtureRequest) -> StoreSpec:
    if engine == "faiss":
        return StoreSpec()
    uri: str = request.getfixturevalue("milvus_db" if engine == "milvus-lite" else "milvus_server")
    return StoreSpec("milvus", uri, f"c_{uuid.uuid4().hex[:10]}")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def made(engine: str, request: pytest.FixtureRequest,
         tmp_path: Path) -> Iterator[tuple[IndexStore, Path, StoreSpec]]:
    spec = spec_for(engine, request)
    index = create_index(tmp_path / "idx", manifest(), spec)
    try:
        yield index, tmp_path / "idx", spec
    finally:
        index.close()


def test_add_search_equals_brute_force(made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index = made[0]
    xb, xq = unit_vectors(200, 0), unit_vectors(8, 1)
    ids = np.asarray(index.add(images(200), xb), dtype=np.int64)
    assert len(set(ids.tolist())) == 200 and index.count == 200 and index.ntotal == 200
    distances, labels = index.search(xq, 5)
    expected_d, expected_i = brute_force(ids, xb, xq, 5)
    assert np.array_equal(labels, expected_i)
    np.testing.assert_allclose(distances, expected_d, rtol=1e-5, atol=1e-5)
    hits = index.search_records(xq[:1], 3)[0]
    assert [h.id for h in hits] == expected_i[0, :3].tolist()
    assert hits[0].record.path == f"img/{int(np.flatnonzero(ids == hits[0].id)[0]):05d}.jpg"


def test_filter_by_ids_and_padding(made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index = made[0]
    xb = unit_vectors(50, 2)
    ids = index.add(images(50), xb)
    chosen = [ids[7], ids[3], ids[40]]
    distances, labels = index.search(xb[3:4], 5, ids=chosen)
    sub = np.asarray(chosen, dtype=np.int64)
    expected_d, expected_i = brute_force(sub, xb[[7, 3, 40]], xb[3:4], 3)
    assert labels[0, :3].tolist() == expected_i[0].tolist() and labels[0, 0] == ids[3]
    np.testing.assert_allclose(distances[0, :3], expected_d[0], rtol=1e-5, atol=1e-5)
    assert labels[0, 3:].tolist() == [-1, -1] and np.all(np.isneginf(distances[0, 3:]))
    assert index.search(xb[:1], 2, ids=[])[1].tolist() == [[-1, -1]]


def test_remove_get_records(made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index = made[0]
    xb = unit_vectors(30, 3)
    ids = index.add(images(30), xb)
    assert index.get(ids[4]).path == "img/00004.jpg" and index.get(ids[4]).width == 64
    assert sorted(index.remove([ids[0], ids[1], 999_999])) == sorted([ids[0], ids[1]])
    assert index.count == 28
    with pytest.raises(NotFoundError):
        index.get(ids[0])
    assert [r.id for r in index.records([ids[5], ids[0], ids[2]])] == [ids[5], ids[2]]
    assert ids[0] not in index.search(xb[:1], 10)[1][0].tolist()
    assert index.paths_present() == {f"img/{i:05d}.jpg" for i in range(2, 30)}
    more = index.add(images(2, start=100), unit_vectors(2, 4))
    assert min(more) > max(ids)  # ids are never reused


def test_reopen_state_and_mismatch(made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index, path, spec = made
    xb = unit_vectors(20, 5)
    ids = index.add(images(20), xb)
    blob = np.random.default_rng(0).bytes(120_000)  # three Milvus chunks
    index.save_state_blobs({"gem.npz": blob})
    index.close()
    assert store_spec(path) == spec
    with open_index(path, expect=manifest()) as again:
        assert again.count == 20
        assert again.search(xb[:2], 1)[1][:, 0].tolist() == ids[:2]
        assert again.load_state_blobs() == {"gem.npz": blob}
    with pytest.raises(ManifestMismatchError, match="whiten"):
        open_index(path, expect=manifest(whiten=True))
    with pytest.raises(ArtifactError, match="already holds"):
        create_index(path, manifest(), spec)


def test_concurrent_searches_while_adding(made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index = made[0]
    xb = unit_vectors(120, 6)
    first = index.add(images(40), xb[:40])
    errors: list[BaseException] = []
    done = threading.Event()

    def searcher() -> None:
        try:
            while not done.is_set():
                labels = index.search(xb[:2], 1)[1]
                assert labels[:, 0].tolist() == first[:2]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for start in range(40, 120, 20):
            index.add(images(20, start=start), xb[start:start + 20])
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert index.count == 120


def test_declared_capabilities(engine: str, made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index = made[0]
    assert isinstance(index, IndexStore)
    assert {name for name, cap in CAPABILITIES.items() if isinstance(index, cap)} == \
        DECLARED[engine]


def test_a_declared_capability_behaves_alike(made: tuple[IndexStore, Path, StoreSpec]) -> None:
    index = made[0]
    assert isinstance(index, DedupesContent) and isinstance(index, KnowsSources)
    first = index.add_unique(images(3), unit_vectors(3, 7))
    again = index.add_unique(images(4, start=2), unit_vectors(4, 8))
    assert [a.duplicate for a in again.added] == [True, False, False, False]
    assert again.added[0].id == first.added[2].id and index.count == 6
    assert [r.id for r in index.find_sha256(images(1, start=2)[0].sha256)] == [first.added[2].id]
    assert index.images_root is None
    index.set_images_root("/photos")
    assert index.images_root == "/photos"
    assert index.paths_present() == {f"img/{i:05d}.jpg" for i in range(6)}
