"""The Milvus engine: vectors *and* records in a Milvus collection, any number of processes.

Importing this package imports pymilvus (``pip install -e '.[milvus]'``); :mod:`retrieval.index`
imports it only when a Milvus-backed directory is opened. Independent of
:mod:`retrieval.index.local`.
"""

from retrieval.index.milvus._client import fetch_published
from retrieval.index.milvus._index import MilvusIndex
from retrieval.index.milvus._schema import MilvusSpec, milvus_index

__all__ = ["MilvusIndex", "MilvusSpec", "fetch_published", "milvus_index"]
