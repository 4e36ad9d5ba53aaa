"""What only the Milvus engine does (the shared behaviour is in ``test_store_contract.py``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from retrieval.errors import ConfigError, ManifestMismatchError, StoreTimeoutError
from retrieval.index import MANIFEST_NAME, StoreSpec, create_index, open_index
from retrieval.index._spec import save_manifest
from tests.retrieval.index.samples import images, manifest, unit_vectors

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")

from retrieval.index.milvus import MilvusIndex  # needs pymilvus


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "engine.db")


@pytest.fixture
def spec(milvus_db: str) -> StoreSpec:
    return StoreSpec("milvus", milvus_db, f"c_{uuid.uuid4().hex[:10]}")


def test_published_manifest_checked(spec: StoreSpec, tmp_path: Path) -> None:
    """A directory whose manifest disagrees with what Milvus publishes is refused."""
    create_index(tmp_path / "a", manifest(), spec).close()
    save_manifest(tmp_path / "a", manifest(whiten=True), spec)
    with pytest.raises(ManifestMismatchError, match="whiten"):
        open_index(tmp_path / "a")


def test_refuses_what_it_cannot_do(spec: StoreSpec, tmp_path: Path) -> None:
    for factory, words in [("IVF64,PQ8", "Milvus Lite has no IVF_PQ"),
                           ("PCA64,Flat", "no Milvus equivalent")]:
        with pytest.raises(ConfigError, match=words):
            create_index(tmp_path / factory, manifest(factory), spec)
        assert not (tmp_path / factory).exists()


def test_ivf_gets_the_default_nprobe_in_both_manifests(spec: StoreSpec, tmp_path: Path) -> None:
    with create_index(tmp_path / "ivf", manifest("IVF4,Flat"), spec) as index:
        assert dict(index.manifest.search_params) == {"nprobe": 16}
        assert index.search_params == {"nprobe": 16}
    saved = json.loads((tmp_path / "ivf" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert saved["search_params"] == {"nprobe": 16}
    with create_index(tmp_path / "asked", manifest("IVF4,Flat", search_params={"nprobe": 2}),
                      StoreSpec("milvus", spec.uri, spec.collection + "b")) as index:
        assert index.search_params == {"nprobe": 2}


def test_no_stubs_for_what_milvus_lacks(spec: StoreSpec, tmp_path: Path) -> None:
    with create_index(tmp_path / "m", manifest(), spec) as index:
        assert isinstance(index, MilvusIndex)
        for name in ("train", "is_trained", "refresh", "indexed_vectors", "replace",
                     "neighbours"):
            assert not hasattr(index, name), name


def test_dba_is_refused_at_create(spec: StoreSpec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DBA needs the FAISS"):
        create_index(tmp_path / "d", manifest(dba_k=3), spec)
    assert not (tmp_path / "d").exists()


def test_flush_returns_once_indexed(spec: StoreSpec, tmp_path: Path) -> None:
    with create_index(tmp_path / "f", manifest(), spec) as index:
        assert isinstance(index, MilvusIndex)
        index.add(images(5), unit_vectors(5, 1))
        index.flush(timeout_s=60)
        assert index.count == 5


class _StillIndexing:
    """A client whose index never catches up (the seam: MilvusIndex takes its client)."""

    def __init__(self) -> None:
        self.polls = 0

    def flush(self, name: str) -> None:
        pass

    def describe_index(self, name: str, index_name: str) -> dict[str, Any]:
        self.polls += 1
        return {"pending_index_rows": 7}

    def close(self) -> None:
        pass


def test_flush_raises_when_the_index_does_not_catch_up(spec: StoreSpec, tmp_path: Path) -> None:
    client = _StillIndexing()
    index = MilvusIndex(tmp_path, manifest(), spec, client, read_only=False)
    with pytest.raises(StoreTimeoutError, match=r"7 rows still wait for their index after 0\.2 s"):
        index.flush(timeout_s=0.2)
    assert client.polls >= 2
    index.close()
