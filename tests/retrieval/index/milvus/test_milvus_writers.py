"""Several writers on one Milvus collection: content claims, request keys that replay through
another writer, a writer that died between its plan and its images (Milvus Lite; two index
objects in one process stand for two replicas — the server case runs in real processes in
``tests/service/test_milvus_cluster.py``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval.errors import ConfigError, StoreUnavailableError
from retrieval.index import StoreSpec, create_index, open_index
from tests.retrieval.index.samples import images, manifest, unit_vectors

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")

from retrieval.index.milvus import MilvusIndex  # needs pymilvus
from retrieval.index.milvus._claims import claim, claims_of


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "writers.db")


@pytest.fixture
def pair(milvus_db: str, tmp_path: Path) -> Iterator[tuple[MilvusIndex, MilvusIndex]]:
    """Two writers on one new collection."""
    spec = StoreSpec("milvus", milvus_db, f"w_{uuid.uuid4().hex[:10]}")
    create_index(tmp_path / "a", manifest(), spec).close()
    a, b = open_index(tmp_path / "a"), open_index(tmp_path / "a")
    assert isinstance(a, MilvusIndex) and isinstance(b, MilvusIndex)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_key_replays_through_the_other_writer(pair: tuple[MilvusIndex, MilvusIndex]) -> None:
    a, b = pair
    first = a.add_unique(images(3), unit_vectors(3, 0), request_key="k1", fingerprint="f")
    assert not first.replayed and len(first.new_ids) == 3
    again = b.saved_outcome("k1", "f")
    assert again is not None and again.replayed and again.added == first.added
    assert b.add_unique(images(3), unit_vectors(3, 0), request_key="k1",
                        fingerprint="f").added == first.added
    assert b.count == 3
    with pytest.raises(ConfigError, match="other content"):
        b.saved_outcome("k1", "another")
    b.remove([first.added[0].id])  # a committed answer stays the answer; the removal stays
    assert b.add_unique(images(3), unit_vectors(3, 0), request_key="k1",
                        fingerprint="f").replayed
    assert a.count == 2


def test_same_content_through_two_writers_at_once(pair: tuple[MilvusIndex, MilvusIndex]) -> None:
    a, b = pair
    outcomes: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def write(name: str, index: MilvusIndex) -> None:
        barrier.wait()
        outcomes[name] = [index.add_unique(images(4, start=10 * r), unit_vectors(4, r))
                          for r in range(4)]

    threads = [threading.Thread(target=write, args=(n, i)) for n, i in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.count == 16  # every content once, whichever writer won it
    for r in range(4):
        got_a, got_b = outcomes["a"][r].added, outcomes["b"][r].added
        assert [x.id for x in got_a] == [x.id for x in got_b]
        assert all(x.duplicate != y.duplicate for x, y in zip(got_a, got_b, strict=True))
        assert [len(a.find_sha256(x.sha256)) for x in got_a] == [1] * 4


class _DiesBeforeImages:
    """A client that fails the image upsert once: a writer killed between its plan and its
    images (the seam: a MilvusIndex takes its client)."""

    def __init__(self, client: Any, images_name: str) -> None:
        self._client, self._images = client, images_name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upsert(self, name: str, rows: Any) -> Any:
        if name == self._images:
            raise StoreUnavailableError("the writer died here")
        return self._client.upsert(name, rows)


def test_a_retry_adopts_a_dead_writers_plan(pair: tuple[MilvusIndex, MilvusIndex],
                                            tmp_path: Path) -> None:
    a, b = pair
    dying = MilvusIndex(a.path, a.manifest, a.store,
                        _DiesBeforeImages(a._client, a.store.collection), read_only=False)
    xb = unit_vectors(3, 5)
    with pytest.raises(StoreUnavailableError):
        dying.add_unique(images(3), xb, request_key="k2", fingerprint="f")
    assert b.count == 0 and b.saved_outcome("k2", "f") is None  # nothing visible, not committed
    retried = b.add_unique(images(3), xb, request_key="k2", fingerprint="f")
    assert retried.replayed and b.count == 3
    assert [r.id for r in b.records([x.id for x in retried.added])] == \
        [x.id for x in retried.added]
    np.testing.assert_allclose(b.stored_vectors([x.id for x in retried.added]), xb, atol=1e-6)
    assert b.saved_outcome("k2", "f") == retried


def test_claims_wait_for_a_live_writer_and_skip_a_dead_one(
        pair: tuple[MilvusIndex, MilvusIndex]) -> None:
    a, _ = pair
    client, name = a._client, a.store.collection
    sha = "ab" * 32

    def exists(ids: list[int]) -> set[int]:
        return {r.id for r in a.records(ids)}

    assert claim(client, name, {sha: 7}, exists, clock=lambda: 0.0) == {sha: 7}  # long dead
    assert claim(client, name, {sha: 8}, exists) == {sha: 8}  # the dead claim is skipped
    rows = client.query(claims_of(name), filter=f'sha256 == "{sha}"', output_fields=["image"])
    assert [r["image"] for r in rows] == [8]
    waited: dict[str, int] = {}
    late = threading.Thread(target=lambda: waited.update(
        claim(client, name, {sha: 9}, exists, lease_s=0.5)))
    late.start()  # id 8 is claimed, young and not written: the claim waits, then skips it
    late.join()
    assert waited == {sha: 9}
