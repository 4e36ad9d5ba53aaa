"""The local engine: FAISS in memory over SQLite on disk, all in the index directory.

:class:`ImageIndex` owns a :class:`Store` (``store.sqlite``: records, vectors, layouts, request
keys, the change log), a :class:`VectorIndex` (FAISS, snapshotted to ``index.faiss``), a DBA keeper
when the manifest asks for DBA, and a follower when opened read-only. One process writes a
directory (``lock``), any number read it. Independent of :mod:`retrieval.index.milvus`.
"""

from retrieval.index.local._faiss import VectorIndex
from retrieval.index.local._image_index import ImageIndex
from retrieval.index.local._store import DEFAULT_KEY_TTL_S, STORE_NAME, Store
from retrieval.index.local._sweep import UPLOADS_DIR_NAME, SweepReport, sweep_files

__all__ = ["DEFAULT_KEY_TTL_S", "STORE_NAME", "UPLOADS_DIR_NAME", "ImageIndex", "Store",
           "SweepReport", "VectorIndex", "sweep_files"]
