"""The durable index: SQLite records (the truth), a FAISS snapshot, recovery, locks, manifest.

Nothing here imports torch: an index is opened, searched and changed without a network.
"""

from retrieval.index._duplicates import (
    DEFAULT_LAYOUT_THRESHOLD,
    DEFAULT_THRESHOLD,
    GLOBAL_ONLY_THRESHOLD,
    DuplicateGroup,
    DuplicatePage,
    DuplicatePair,
    DuplicateRule,
    duplicate_page,
    duplicates_of,
    group_pairs,
    supports_duplicates,
)
from retrieval.index._faiss import DEFAULT_NPROBE, VectorIndex, default_search_params
from retrieval.index._index import Hit, ImageIndex
from retrieval.index._manifest import MANIFEST_NAME, SEARCH_PARAM_NAMES, Manifest, library_versions
from retrieval.index._query import search_hits, similar_hits
from retrieval.index._seam import (
    IndexStore,
    StoreSpec,
    create_index,
    materialise_index,
    open_index,
    store_spec,
)
from retrieval.index._store import DEFAULT_KEY_TTL_S, STORE_NAME, ImageRecord, NewImage, Store
from retrieval.index._sweep import UPLOADS_DIR_NAME, SweepReport, sweep_files
from retrieval.index._unique import Added, AddOutcome
from retrieval.rerank import MAX_RERANK_K, Rerank

__all__ = [
    "DEFAULT_KEY_TTL_S",
    "DEFAULT_LAYOUT_THRESHOLD",
    "DEFAULT_NPROBE",
    "DEFAULT_THRESHOLD",
    "GLOBAL_ONLY_THRESHOLD",
    "MANIFEST_NAME",
    "MAX_RERANK_K",
    "SEARCH_PARAM_NAMES",
    "STORE_NAME",
    "UPLOADS_DIR_NAME",
    "AddOutcome",
    "Added",
    "DuplicateGroup",
    "DuplicatePage",
    "DuplicatePair",
    "DuplicateRule",
    "Hit",
    "ImageIndex",
    "ImageRecord",
    "IndexStore",
    "Manifest",
    "NewImage",
    "Rerank",
    "Store",
    "StoreSpec",
    "SweepReport",
    "VectorIndex",
    "create_index",
    "default_search_params",
    "duplicate_page",
    "duplicates_of",
    "group_pairs",
    "library_versions",
    "materialise_index",
    "open_index",
    "search_hits",
    "similar_hits",
    "store_spec",
    "supports_duplicates",
    "sweep_files",
]
