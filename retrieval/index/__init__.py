"""The durable index: the store protocol, the code that opens the right engine, and the engines.

* shared, apart from both engines: :class:`Manifest`, the records (:class:`NewImage`,
  :class:`ImageRecord`, :class:`Hit`, :class:`AddOutcome`), the protocol (:class:`IndexStore`
  and its optional capabilities, :mod:`._protocol`), :func:`open_index` / :func:`create_index` /
  :func:`materialise_index`, αQE search (:func:`search_hits`) and near-duplicates;
* :mod:`retrieval.index.local`: FAISS in memory over SQLite in the directory (:class:`ImageIndex`);
* :mod:`retrieval.index.milvus`: vectors and records in a Milvus collection (imported only when
  such a directory is opened, so pymilvus is optional).

Nothing here imports torch: an index is opened, searched and changed without a network.
"""

from retrieval.index._catalog import FolderCount, Folders, folder_counts, folder_tree, tag_counts
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
from retrieval.index._filters import (
    RecordFilter,
    clean_folder,
    id_page,
    matching_ids,
    scanned_ids,
    source_roots,
)
from retrieval.index._graph_search import NO_GRAPH, graph_of
from retrieval.index._manifest import (
    DEFAULT_NPROBE,
    MANIFEST_NAME,
    MAX_GRAPH_K,
    SEARCH_PARAM_NAMES,
    Manifest,
    library_versions,
)
from retrieval.index._opening import create_index, materialise_index, open_index
from retrieval.index._protocol import (
    AugmentsVectors,
    CountsFolders,
    DedupesContent,
    FollowsWriter,
    ImportsRecords,
    IndexStore,
    KeepsGraph,
    KeepsLayouts,
    KeepsRequestKeys,
    KeepsTags,
    KnowsSources,
    ReplacesRecords,
    RepointsRecords,
    SelectsRecords,
    Trains,
)
from retrieval.index._query import diffusion_of, search_hits, similar_hits
from retrieval.index._records import Added, AddOutcome, Hit, ImageRecord, NewImage, folder_of
from retrieval.index._spec import StoreSpec, store_spec
from retrieval.index._tags import MAX_TAG_LENGTH, MAX_TAGS, TagEdit, clean_tags
from retrieval.index.local import (
    DEFAULT_KEY_TTL_S,
    STORE_NAME,
    UPLOADS_DIR_NAME,
    ImageIndex,
    Store,
    SweepReport,
    VectorIndex,
    sweep_files,
)
from retrieval.rerank import MAX_RERANK_K, Diffusion, Rerank

__all__ = [
    "DEFAULT_KEY_TTL_S",
    "DEFAULT_LAYOUT_THRESHOLD",
    "DEFAULT_NPROBE",
    "DEFAULT_THRESHOLD",
    "GLOBAL_ONLY_THRESHOLD",
    "MANIFEST_NAME",
    "MAX_GRAPH_K",
    "MAX_RERANK_K",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "NO_GRAPH",
    "SEARCH_PARAM_NAMES",
    "STORE_NAME",
    "UPLOADS_DIR_NAME",
    "AddOutcome",
    "Added",
    "AugmentsVectors",
    "CountsFolders",
    "DedupesContent",
    "Diffusion",
    "DuplicateGroup",
    "DuplicatePage",
    "DuplicatePair",
    "DuplicateRule",
    "FolderCount",
    "Folders",
    "FollowsWriter",
    "Hit",
    "ImageIndex",
    "ImageRecord",
    "ImportsRecords",
    "IndexStore",
    "KeepsGraph",
    "KeepsLayouts",
    "KeepsRequestKeys",
    "KeepsTags",
    "KnowsSources",
    "Manifest",
    "NewImage",
    "RecordFilter",
    "ReplacesRecords",
    "RepointsRecords",
    "Rerank",
    "SelectsRecords",
    "Store",
    "StoreSpec",
    "SweepReport",
    "TagEdit",
    "Trains",
    "VectorIndex",
    "clean_folder",
    "clean_tags",
    "create_index",
    "diffusion_of",
    "duplicate_page",
    "duplicates_of",
    "folder_counts",
    "folder_of",
    "folder_tree",
    "graph_of",
    "group_pairs",
    "id_page",
    "library_versions",
    "matching_ids",
    "materialise_index",
    "open_index",
    "scanned_ids",
    "search_hits",
    "similar_hits",
    "source_roots",
    "store_spec",
    "supports_duplicates",
    "sweep_files",
    "tag_counts",
]
