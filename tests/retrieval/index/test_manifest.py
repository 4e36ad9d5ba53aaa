"""Tests for manifest: round trips, validation, and refusing mismatched query settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from retrieval.errors import ArtifactError, ConfigError, ManifestMismatchError
from retrieval.index._manifest import EMBEDDING_FIELDS, MANIFEST_NAME, Manifest, library_versions


def manifest(**changes: Any) -> Manifest:
    fields: dict[str, Any] = dict(
        backbone="vgg16", weights="imagenet:IMAGENET1K_V1", max_side=1024, pooling="gem",
        pooling_params={"p": 3.0}, whiten=True, whiten_dim=256, dim=256,
        weights_file="/w/vgg16.pth", faiss_factory="Flat",
        versions={"python": "3.11.7", "faiss": "1.15.1"}, created_at="2024-01-02T03:04:05+00:00")
    fields.update(changes)
    return Manifest(**fields)


def test_dict_and_file_round_trip(tmp_path: Path) -> None:
    m = manifest(pooling="mop", pooling_params={"k": 32, "regions": "2,1", "pca_dim": 128})
    assert Manifest.from_dict(m.to_dict()) == m
    m.save(tmp_path)
    assert Manifest.load(tmp_path) == m
    on_disk = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert on_disk["pooling_params"] == {"k": 32, "pca_dim": 128, "regions": "2,1"}
    assert on_disk["format_version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]  # no temporary left over


def test_manifest_is_immutable_and_hashable() -> None:
    params = {"p": 3.0}
    m = manifest(pooling_params=params)
    params["p"] = 4.0
    assert m.pooling_params == {"p": 3.0}
    with pytest.raises(TypeError):
        m.pooling_params["p"] = 5.0  # type: ignore[index]
    assert hash(m) == hash(manifest())
    assert len({m, manifest()}) == 1


def test_defaults_and_created_at() -> None:
    m = Manifest(backbone="vgg16", weights="random:seed=0", max_side=512, pooling="sum", dim=512)
    assert (m.metric, m.faiss_factory, m.whiten, m.whiten_dim) == ("inner_product", "Flat",
                                                                   False, None)
    assert m.created_at.endswith("+00:00")


def test_from_dict_names_missing_and_ill_typed_fields() -> None:
    data = manifest().to_dict()
    del data["backbone"], data["dim"]
    data["whiten"] = 1
    data["max_side"] = True
    data["pooling_params"] = {"p": [3]}
    with pytest.raises(ArtifactError) as err:
        Manifest.from_dict(data)
    message = str(err.value)
    for expected in ("backbone: missing", "dim: missing", "whiten: must be a boolean",
                     "max_side: must be an integer", "pooling_params: must be"):
        assert expected in message


def test_from_dict_refuses_newer_format_and_bad_values() -> None:
    with pytest.raises(ArtifactError, match="newer"):
        Manifest.from_dict({**manifest().to_dict(), "format_version": 2})
    with pytest.raises(ArtifactError, match="metric"):
        Manifest.from_dict({**manifest().to_dict(), "metric": "cosine"})
    with pytest.raises(ArtifactError, match="JSON object"):
        Manifest.from_dict([1, 2])  # type: ignore[arg-type]


def test_unknown_keys_are_ignored() -> None:
    assert Manifest.from_dict({**manifest().to_dict(), "future": 1}) == manifest()


def test_constructor_validates() -> None:
    with pytest.raises(ConfigError, match="metric"):
        manifest(metric="cosine")
    with pytest.raises(ConfigError, match="dim"):
        manifest(dim=0)
    with pytest.raises(ConfigError, match="dim"):
        manifest(dim="256")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"[]", b'{"dim": 3}'])
def test_corrupt_manifest_file_is_an_artifact_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(ArtifactError, match=MANIFEST_NAME):
        Manifest.load(tmp_path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not an index directory"):
        Manifest.load(tmp_path)


def test_check_matches_names_each_differing_field() -> None:
    index = manifest()
    index.check_matches(manifest(versions={}, created_at="x", weights_file=None,
                                 faiss_factory="HNSW32"))  # not embedding settings
    with pytest.raises(ManifestMismatchError) as err:
        index.check_matches(manifest(backbone="resnet50", pooling_params={"p": 2.0}))
    message = str(err.value)
    assert "backbone: index has 'vgg16', asked for 'resnet50'" in message
    assert "pooling_params: index has {'p': 3.0}, asked for {'p': 2.0}" in message
    assert "max_side" not in message


def test_check_matches_on_chosen_fields() -> None:
    with pytest.raises(ManifestMismatchError, match="faiss_factory: index has 'Flat'"):
        manifest().check_matches(manifest(faiss_factory="HNSW32"), fields=("faiss_factory",))


def test_embedding_fields_are_what_a_query_must_share() -> None:
    assert set(EMBEDDING_FIELDS) == {
        "backbone", "weights", "max_side", "scales", "pooling", "pooling_params", "whiten",
        "whiten_dim", "dim"}
    changed = {"backbone": "resnet50", "weights": "random:seed=1", "max_side": 512,
               "scales": (1.0, 0.5), "pooling": "mac", "pooling_params": {}, "whiten": False,
               "whiten_dim": 8, "dim": 8}
    for name, value in changed.items():
        with pytest.raises(ManifestMismatchError, match=name):
            manifest().check_matches(manifest(**{name: value}))
    manifest().check_matches(manifest(faiss_factory="HNSW32", search_params={"ef_search": 64},
                                      qe_k=3, dba_k=2))  # index and query knobs: not embedding


def test_search_defaults_fill_only_what_is_unset() -> None:
    m = manifest(search_params={"ef_search": 64})
    assert m.with_search_defaults({}) is m
    filled = m.with_search_defaults({"nprobe": 16, "ef_search": 16})
    assert dict(filled.search_params) == {"nprobe": 16, "ef_search": 64}
    assert filled.created_at == m.created_at and filled.dim == m.dim


def test_old_manifest_without_scales_or_rerank_means_one_scale_and_none() -> None:
    data = manifest().to_dict()
    for name in ("scales", "qe_k", "qe_alpha", "dba_k", "dba_alpha"):
        del data[name]
    old = Manifest.from_dict(data)
    assert (old.scales, old.qe_k, old.dba_k) == ((1.0,), 0, 0)
    new = Manifest.from_dict({**data, "scales": [1, 0.5], "qe_k": 2, "dba_k": 2})
    assert new.scales == (1.0, 0.5) and Manifest.from_dict(new.to_dict()) == new
    with pytest.raises(ArtifactError, match="scales"):
        Manifest.from_dict({**data, "scales": []})


def test_library_versions_does_not_import_torch() -> None:
    code = ("import sys; from retrieval.index._manifest import library_versions as v; r = v(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(sorted(r))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert "'cbir'" in out.stdout and "'faiss'" in out.stdout
    versions = library_versions()
    import faiss
    import numpy

    assert versions["faiss"] == faiss.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["python"].count(".") == 2
