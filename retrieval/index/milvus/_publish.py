"""What a new index publishes in Milvus, and the check every open makes against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retrieval.errors import ArtifactError
from retrieval.index._manifest import EMBEDDING_FIELDS, Manifest
from retrieval.index._spec import StoreSpec, save_manifest
from retrieval.index.milvus._guard import ensure_loaded
from retrieval.index.milvus._ids import take_tickets
from retrieval.index.milvus._schema import MilvusSpec, create_collections, get_text, put_text

__all__ = ["check_published", "publish_new"]


def publish_new(client: Any, path: Path, manifest: Manifest, store: StoreSpec,
                spec: MilvusSpec) -> None:
    """Create the collections, publish the manifest and the ids' base, then write ``path``."""
    if client.has_collection(store.collection):
        raise ArtifactError(f"collection {store.collection!r} already exists at {store.uri}; "
                            "choose another --collection")
    meta = f"{store.collection}_meta"
    create_collections(client, store.uri, store.collection, manifest.dim, spec)
    put_text(client, meta, "manifest", json.dumps(manifest.to_dict(), sort_keys=True))
    first = take_tickets(client, store.collection, 1)[0]  # spent here: ids start at 1
    put_text(client, meta, "id_base", str(first))
    path.mkdir(parents=True, exist_ok=True)
    save_manifest(path, manifest, store)


def check_published(client: Any, path: Path, manifest: Manifest, store: StoreSpec) -> None:
    """Load the collections and check the directory's manifest against the published one."""
    names = [store.collection, f"{store.collection}_meta"]
    present = all(client.has_collection(n) for n in names)
    if present:
        ensure_loaded(client, names, store.uri)
    text = get_text(client, names[1], "manifest") if present else None
    if text is None:
        raise ArtifactError(f"{path}: collection {store.collection!r} is missing at {store.uri}")
    published = Manifest.from_dict(json.loads(text))
    published.check_matches(manifest, fields=(*EMBEDDING_FIELDS, "metric", "faiss_factory"))
