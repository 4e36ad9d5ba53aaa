"""docker/compose.milvus.yml checked against the code it runs (Milvus itself cannot run here)."""

from __future__ import annotations

from typing import Any

import pytest

from service.settings import Settings
from tests.docker.test_compose import cli, env_keys, interpolate, load, unknown_settings


@pytest.fixture(scope="module")
def milvus() -> dict[str, Any]:
    return load("compose.milvus.yml")


def test_milvus_standalone_as_documented(milvus: dict[str, Any]) -> None:
    services = milvus["services"]
    assert set(services) == {"etcd", "minio", "milvus", "api", "indexer"}
    server = services["milvus"]
    assert server["command"] == ["milvus", "run", "standalone"]
    assert server["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert server["environment"]["MINIO_ADDRESS"] == "minio:9000"
    assert {k: v["condition"] for k, v in server["depends_on"].items()} == {
        "etcd": "service_healthy", "minio": "service_healthy"}
    assert "9091/healthz" in " ".join(server["healthcheck"]["test"])
    assert {"etcd", "minio", "milvus"} <= set(milvus["volumes"])


def test_api_replicas_start_from_the_store(milvus: dict[str, Any]) -> None:
    api = milvus["services"]["api"]
    assert int(interpolate(str(api["deploy"]["replicas"]))) >= 2
    assert "container_name" not in api  # replicas need generated names
    env = api["environment"]
    settings = Settings(store_uri=env["CBIR_STORE_URI"],
                        collection=interpolate(env["CBIR_COLLECTION"]))
    assert settings.store_uri == "http://milvus:19530"
    args = cli(api["command"])
    assert args.command == "serve" and args.index.startswith("/tmp")
    assert "/tmp" in api["tmpfs"] and api["read_only"] is True
    assert api["depends_on"]["milvus"]["condition"] == "service_healthy"
    assert not unknown_settings(env_keys(api))


def test_indexer_writes_to_the_same_collection(milvus: dict[str, Any]) -> None:
    indexer = milvus["services"]["indexer"]
    args = cli(indexer["command"])
    api_env = milvus["services"]["api"]["environment"]
    assert (args.command, args.index_command, args.store) == ("index", "build", "milvus")
    assert args.milvus_uri == api_env["CBIR_STORE_URI"]
    assert args.collection == interpolate(api_env["CBIR_COLLECTION"])
    assert args.resume and args.faiss == "HNSW32"
    assert indexer["profiles"] == ["index"]
    assert indexer["build"]["args"]["EXTRAS"] == "milvus"
