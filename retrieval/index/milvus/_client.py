"""Connecting to Milvus, and what is read before an index is open (see :mod:`._index`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval.errors import ArtifactError
from retrieval.index._manifest import Manifest
from retrieval.index._records import ImageRecord
from retrieval.index._spec import StoreSpec
from retrieval.index.milvus._guard import GuardedClient, ensure_loaded, quiet_lite_logs, translate
from retrieval.index.milvus._schema import get_text, is_lite, load_blob

__all__ = ["absolute", "connect", "fetch_published", "id_lock", "record"]

_ID_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_ID_LOCKS_GUARD = threading.Lock()


def id_lock(uri: str, collection: str) -> threading.Lock:
    with _ID_LOCKS_GUARD:
        return _ID_LOCKS.setdefault((uri, collection), threading.Lock())


def connect(uri: str) -> Any:
    """A pymilvus client whose failures are :class:`~retrieval.errors.StoreError`\\ s (see
    :mod:`._guard`); :class:`StoreUnavailableError` with a readable reason when it cannot
    connect."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    quiet_lite_logs()
    try:
        return GuardedClient(MilvusClient(uri=uri), uri)
    except MilvusException as exc:
        raise translate(exc, uri, "connect") from exc


def record(row: Mapping[str, Any]) -> ImageRecord:
    return ImageRecord(int(row["id"]), str(row["path"]), str(row["sha256"]), int(row["width"]),
                       int(row["height"]), float(row["added_at"]),
                       tuple(sorted(str(t) for t in row.get("tags") or ())))


def fetch_published(spec: StoreSpec) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and fitted state published in a collection's meta collection."""
    client = connect(spec.uri)
    try:
        meta = f"{spec.collection}_meta"
        if not client.has_collection(meta):
            raise ArtifactError(f"no cbir index in collection {spec.collection!r} at {spec.uri}")
        ensure_loaded(client, [meta], spec.uri)
        text = get_text(client, meta, "manifest")
        if text is None:
            raise ArtifactError(f"no cbir index in collection {spec.collection!r} at {spec.uri}")
        manifest = Manifest.from_dict(json.loads(text))
        names = json.loads(get_text(client, meta, "state") or "[]")
        blobs = {n: load_blob(client, meta, f"state:{n}") or b"" for n in names}
        return manifest, blobs
    finally:
        client.close()


def absolute(store: StoreSpec) -> StoreSpec:
    """A Milvus Lite path made absolute, so the directory opens from any working directory."""
    if is_lite(store.uri):
        return StoreSpec(store.kind, str(Path(store.uri).resolve()), store.collection)
    return store
