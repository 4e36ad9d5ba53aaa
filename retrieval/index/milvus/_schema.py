"""Milvus collections for an index: the schema, FAISS factory → Milvus index, blobs in rows.

Four collections per index: ``<name>_ids`` hands out ids (:mod:`._ids`), ``<name>_claims``
holds content claims (:mod:`._claims`), ``<name>`` holds one
row per image (``id`` INT64 primary key from a ticket, ``vector``, ``path``, ``sha256``,
``width``, ``height``, ``added_at``, ``tags``: an ARRAY of VARCHAR, absent from collections made
before tags) and ``<name>_meta`` holds the manifest, the ids' base, the fitted state, request keys
(:mod:`._keys`) and layouts (:mod:`._layouts`) (key → VARCHAR value; every Milvus
collection needs a vector field, hence a 2-d ``dummy``). Milvus has no BLOB type, so binary state
is stored as base64 chunks of 49 149 bytes (65 532 characters, under VARCHAR's 65 535) with a
header row, written last, that names the chunk count and the sha256 the reader checks.

pymilvus is imported here, so only when :mod:`retrieval.index.milvus` is (never by
:mod:`retrieval.index`'s ``__init__``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymilvus import DataType, MilvusClient

from retrieval.errors import ArtifactError, ConfigError
from retrieval.index._manifest import DEFAULT_NPROBE
from retrieval.index._tags import MAX_TAG_LENGTH, MAX_TAGS
from retrieval.index.milvus._claims import claims_of, create_claims
from retrieval.index.milvus._guard import ensure_loaded
from retrieval.index.milvus._ids import create_tickets

__all__ = [
    "RECORD_FIELDS",
    "TAGS_FIELD",
    "MilvusSpec",
    "create_collections",
    "default_search_params",
    "get_text",
    "has_tags_field",
    "is_lite",
    "lite_size",
    "load_blob",
    "milvus_index",
    "put_text",
    "save_blob",
    "search_params",
]

#: The scalar fields of an image row, in :class:`ImageRecord` order (plus the id).
RECORD_FIELDS = ["id", "path", "sha256", "width", "height", "added_at"]
#: The tags of an image row (collections made before tags have no such field).
TAGS_FIELD = "tags"

MAX_VARCHAR = 65_535
CHUNK_RAW = 49_149          # 3 * 16383 bytes -> 65 532 base64 characters
BLOB_ROWS_PER_CALL = 64     # 64 chunks ≈ 4 MiB per upsert
MAX_PATH = 4096
HNSW_EF_CONSTRUCTION = 40   # what faiss's HNSW<M> uses, so both engines build the same graph
LITE_INDEXES = frozenset({"FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8"})
_METRICS = {"inner_product": "IP", "l2": "L2"}
_DUMMY = [0.0, 0.0]


@dataclass(frozen=True)
class MilvusSpec:
    """A Milvus vector index: its type, build parameters and metric."""

    index_type: str
    params: dict[str, int]
    metric: str


def is_lite(uri: str) -> bool:
    """A local path (Milvus Lite, in this process) rather than ``http(s)://`` / ``tcp://``."""
    return "://" not in uri


def milvus_index(factory: str, metric: str, *, lite: bool) -> MilvusSpec:
    """The Milvus index for a FAISS factory string; :class:`ConfigError` when there is none."""
    f = factory.replace(" ", "")
    if metric not in _METRICS:
        raise ConfigError(f"metric {metric!r} has no Milvus equivalent")
    table: list[tuple[str, str, tuple[str, ...]]] = [
        (r"Flat", "FLAT", ()),
        (r"HNSW(\d+)(?:,Flat)?", "HNSW", ("M",)),
        (r"IVF(\d+),Flat", "IVF_FLAT", ("nlist",)),
        (r"IVF(\d+),SQ8", "IVF_SQ8", ("nlist",)),
        (r"IVF(\d+),PQ(\d+)", "IVF_PQ", ("nlist", "m")),
    ]
    for pattern, index_type, names in table:
        match = re.fullmatch(pattern, f)
        if match is None:
            continue
        params = {n: int(v) for n, v in zip(names, match.groups(), strict=True)}
        if index_type == "HNSW":
            params["efConstruction"] = HNSW_EF_CONSTRUCTION
        if index_type == "IVF_PQ":
            params["nbits"] = 8
        if lite and index_type not in LITE_INDEXES:
            raise ConfigError(f"--faiss {factory}: Milvus Lite has no {index_type} index (it has "
                              f"{', '.join(sorted(LITE_INDEXES))}); use a Milvus server "
                              "(http://host:19530) or HNSW32 / IVF<n>,Flat")
        return MilvusSpec(index_type, params, _METRICS[metric])
    raise ConfigError(f"--faiss {factory} has no Milvus equivalent: the Milvus store takes Flat, "
                      "HNSW<M>, IVF<n>,Flat, IVF<n>,SQ8 or IVF<n>,PQ<m> (server only)")


def default_search_params(spec: MilvusSpec) -> dict[str, int]:
    """What a new manifest probes unless it says: ``nprobe`` for IVF indexes, as locally."""
    return {"nprobe": DEFAULT_NPROBE} if spec.index_type.startswith("IVF") else {}


def search_params(spec: MilvusSpec, knobs: dict[str, int], k: int) -> dict[str, Any]:
    """Milvus search parameters from cbir's knobs (``nprobe``, ``ef_search``)."""
    params: dict[str, int] = {}
    if spec.index_type.startswith("IVF") and "nprobe" in knobs:
        params["nprobe"] = min(knobs["nprobe"], spec.params["nlist"])
    if spec.index_type == "HNSW":
        # faiss's default efSearch is 16; a Milvus server refuses ef < k.
        params["ef"] = max(knobs.get("ef_search", 16), k)
    return {"metric_type": spec.metric, "params": params}


def create_collections(client: Any, uri: str, name: str, dim: int, spec: MilvusSpec) -> None:
    """Create ``name`` (images) and ``name_meta`` with Strong consistency, and load them.

    Each index is created without pymilvus's wait for it (that wait first asks for a timestamp,
    which Milvus Lite does not implement: its grpc server logged a traceback); an index on an
    empty collection is complete at once, and loading waits for it anyway."""
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
    s.add_field("sha256", DataType.VARCHAR, max_length=64)
    s.add_field("width", DataType.INT64)
    s.add_field("height", DataType.INT64)
    s.add_field("added_at", DataType.DOUBLE)
    s.add_field(TAGS_FIELD, DataType.ARRAY, element_type=DataType.VARCHAR,
                max_capacity=MAX_TAGS, max_length=4 * MAX_TAG_LENGTH)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type=spec.index_type, metric_type=spec.metric,
                 params=dict(spec.params))
    _create(client, name, s, ip)
    m = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    m.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
    m.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
    m.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    mp = client.prepare_index_params()
    mp.add_index(field_name="dummy", index_type="FLAT", metric_type="L2")
    _create(client, f"{name}_meta", m, mp)
    create_tickets(client, name)
    create_claims(client, name)
    ensure_loaded(client, [name, f"{name}_meta", claims_of(name)], uri)


def has_tags_field(client: Any, name: str) -> bool:
    """Whether collection ``name`` has the ``tags`` field (made since tags exist)."""
    fields = client.describe_collection(name).get("fields", [])
    return any(f.get("name") == TAGS_FIELD for f in fields)


def _create(client: Any, name: str, schema: Any, index_params: Any) -> None:
    client.create_collection(name, schema=schema, consistency_level="Strong")
    client.create_index(name, index_params, sync=False)


def put_text(client: Any, meta: str, key: str, value: str) -> None:
    if len(value) > MAX_VARCHAR:
        raise ConfigError(f"{key}: {len(value)} characters do not fit one Milvus VARCHAR")
    client.upsert(meta, [{"key": key, "value": value, "dummy": _DUMMY}])


def get_text(client: Any, meta: str, key: str) -> str | None:
    rows = client.get(meta, ids=[key], output_fields=["value"])
    return str(rows[0]["value"]) if rows else None


def save_blob(client: Any, meta: str, key: str, data: bytes) -> None:
    """``data`` as chunk rows ``key#000000``…, then the header row ``key`` (count, size, sha256)."""
    chunks = [data[i:i + CHUNK_RAW] for i in range(0, len(data), CHUNK_RAW)] or [b""]
    rows = [{"key": f"{key}#{n:06d}", "value": base64.b64encode(c).decode("ascii"),
             "dummy": _DUMMY} for n, c in enumerate(chunks)]
    for start in range(0, len(rows), BLOB_ROWS_PER_CALL):
        client.upsert(meta, rows[start:start + BLOB_ROWS_PER_CALL])
    old = get_text(client, meta, key)
    old_count = int(json.loads(old)["chunks"]) if old else 0
    if old_count > len(chunks):
        client.delete(meta, ids=[f"{key}#{n:06d}" for n in range(len(chunks), old_count)])
    header = {"chunks": len(chunks), "bytes": len(data),
              "sha256": hashlib.sha256(data).hexdigest()}
    put_text(client, meta, key, json.dumps(header))


def load_blob(client: Any, meta: str, key: str) -> bytes | None:
    """The blob saved under ``key``; :class:`ArtifactError` if it does not match its header."""
    text = get_text(client, meta, key)
    if text is None:
        return None
    header = json.loads(text)
    ids = [f"{key}#{n:06d}" for n in range(int(header["chunks"]))]
    found: dict[str, bytes] = {}
    for start in range(0, len(ids), BLOB_ROWS_PER_CALL):
        for row in client.get(meta, ids=ids[start:start + BLOB_ROWS_PER_CALL],
                              output_fields=["value"]):
            found[row["key"]] = base64.b64decode(row["value"])
    data = b"".join(found.get(i, b"") for i in ids)
    if hashlib.sha256(data).hexdigest() != header["sha256"]:
        raise ArtifactError(f"Milvus blob {key!r} in {meta} is incomplete or corrupt")
    return data


def lite_size(uri: str) -> int:
    """Bytes of a Milvus Lite database directory (0 for a server)."""
    if not is_lite(uri):
        return 0
    root = Path(uri)
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0
