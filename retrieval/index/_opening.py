"""Opening the right store for an index directory: :func:`create_index`, :func:`open_index`,
:func:`materialise_index`.

The engines live in subpackages (:mod:`retrieval.index.local`, :mod:`retrieval.index.milvus`) that
never import this module; it imports them only when it opens one, so pymilvus is imported only when
a Milvus-backed directory is opened, and no import cycle runs through here.
"""

from __future__ import annotations

from pathlib import Path

from retrieval.index._manifest import MANIFEST_NAME, Manifest
from retrieval.index._protocol import IndexStore
from retrieval.index._spec import StoreSpec, save_manifest, store_spec
from retrieval.index._state_files import write_state_files

__all__ = ["create_index", "materialise_index", "open_index"]


def create_index(path: str | Path, manifest: Manifest, store: StoreSpec | None = None, *,
                 exist_ok: bool = False) -> IndexStore:
    """A new index at ``path`` whose vectors live in ``store`` (default: FAISS+SQLite there).

    The store adds its default search parameters to the manifest (an IVF index probes
    :data:`~retrieval.index.DEFAULT_NPROBE` lists unless ``manifest.search_params`` says).
    """
    if store is None or store.kind == "faiss":
        from retrieval.index.local import ImageIndex

        return ImageIndex.create(path, manifest, exist_ok=exist_ok)
    from retrieval.index.milvus import MilvusIndex

    return MilvusIndex.create(Path(path), manifest, store, exist_ok=exist_ok)


def open_index(path: str | Path, *, expect: Manifest | None = None,
               read_only: bool = False) -> IndexStore:
    """Open any index directory with the engine its manifest names (see :func:`create_index`)."""
    spec = store_spec(path)
    if spec.kind == "faiss":
        from retrieval.index.local import ImageIndex

        return ImageIndex.open(path, expect=expect, read_only=read_only)
    from retrieval.index.milvus import MilvusIndex

    return MilvusIndex.open(Path(path), spec, expect=expect, read_only=read_only)


def materialise_index(uri: str, collection: str, directory: str | Path) -> Path:
    """Write the manifest and fitted state a Milvus collection holds into ``directory``.

    How a stateless replica starts from the store alone (``CBIR_STORE_URI``,
    ``CBIR_COLLECTION``): afterwards ``directory`` opens like any index directory. An existing
    manifest there must describe the same embedding (:class:`ManifestMismatchError` otherwise).
    """
    from retrieval.index.milvus import fetch_published

    spec = StoreSpec("milvus", uri, collection)
    manifest, blobs = fetch_published(spec)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    if (target / MANIFEST_NAME).exists():
        Manifest.load(target).check_matches(manifest)
    write_state_files(target, blobs)
    save_manifest(target, manifest, spec)
    return target
