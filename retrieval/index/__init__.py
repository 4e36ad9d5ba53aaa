"""The durable index: SQLite records (the truth), a FAISS snapshot, recovery, locks, manifest.

Nothing here imports torch: an index is opened, searched and changed without a network.
"""

from retrieval.index._faiss import DEFAULT_NPROBE, VectorIndex, default_search_params
from retrieval.index._index import Hit, ImageIndex
from retrieval.index._manifest import MANIFEST_NAME, SEARCH_PARAM_NAMES, Manifest, library_versions
from retrieval.index._seam import (
    IndexStore,
    StoreSpec,
    create_index,
    materialise_index,
    open_index,
    store_spec,
)
from retrieval.index._store import STORE_NAME, ImageRecord, NewImage, Store

__all__ = [
    "DEFAULT_NPROBE",
    "MANIFEST_NAME",
    "SEARCH_PARAM_NAMES",
    "STORE_NAME",
    "Hit",
    "ImageIndex",
    "ImageRecord",
    "IndexStore",
    "Manifest",
    "NewImage",
    "Store",
    "StoreSpec",
    "VectorIndex",
    "create_index",
    "default_search_params",
    "library_versions",
    "materialise_index",
    "open_index",
    "store_spec",
]
