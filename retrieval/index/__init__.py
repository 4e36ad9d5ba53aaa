"""The durable index: SQLite records (the truth), a FAISS snapshot, recovery, locks, manifest.

Nothing here imports torch: an index is opened, searched and changed without a network.
"""

from retrieval.index._faiss import DEFAULT_NPROBE, VectorIndex, default_search_params
from retrieval.index._index import Hit, ImageIndex
from retrieval.index._manifest import MANIFEST_NAME, SEARCH_PARAM_NAMES, Manifest, library_versions
from retrieval.index._query import search_hits, similar_hits
from retrieval.index._rerank import MAX_RERANK_K, Rerank
from retrieval.index._store import STORE_NAME, ImageRecord, NewImage, Store

__all__ = [
    "DEFAULT_NPROBE",
    "MANIFEST_NAME",
    "MAX_RERANK_K",
    "SEARCH_PARAM_NAMES",
    "STORE_NAME",
    "Hit",
    "ImageIndex",
    "ImageRecord",
    "Manifest",
    "NewImage",
    "Rerank",
    "Store",
    "VectorIndex",
    "default_search_params",
    "library_versions",
    "search_hits",
    "similar_hits",
]
