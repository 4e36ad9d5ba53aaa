"""``cbir index remove`` and ``cbir index info``: the index alone, no network (no torch)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from retrieval.index import (
    UPLOADS_DIR_NAME,
    ImageIndex,
    IndexStore,
    open_index,
    store_spec,
    sweep_files,
)

__all__ = ["clean_leftovers", "run_info", "run_remove"]


def clean_leftovers(index: IndexStore) -> None:
    """What killed writes left: the index's own temporaries go on open, the uploads' here.

    Only the FAISS+SQLite store keeps uploads beside it; a Milvus store has nothing to sweep.
    """
    if isinstance(index, ImageIndex):
        sweep_files(index, index.path / UPLOADS_DIR_NAME)


def run_remove(args: argparse.Namespace) -> int:
    with open_index(Path(args.index)) as index:
        clean_leftovers(index)
        removed = index.remove(args.ids)
    missing = sorted(set(args.ids) - set(removed))
    print(f"removed {len(removed)} images")
    if missing:
        print(f"cbir: error: no image with id {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    return 0


def run_info(args: argparse.Namespace) -> int:
    with open_index(Path(args.index), read_only=True) as index:
        count, searchable, size = index.count, index.ntotal, index.size_on_disk()
        m = index.manifest.to_dict()
    store = store_spec(Path(args.index))
    if args.json:
        print(json.dumps({"index": str(args.index), "count": count, "searchable": searchable,
                          "size_bytes": size, "manifest": m, "store": store.to_dict()}, indent=2))
        return 0
    print(f"{'index':<16}{args.index}")
    print(f"{'images':<16}{count} ({searchable} searchable)")
    if store.kind != "faiss":
        print(f"{'store':<16}{store.kind} {store.uri} collection {store.collection}")
    print(f"{'size':<16}{size / 1e6:.1f} MB")
    for key in ("backbone", "weights", "max_side", "scales", "pooling", "pooling_params",
                "whiten", "whiten_dim", "dim", "faiss_factory", "search_params", "qe_k",
                "qe_alpha", "dba_k", "dba_alpha", "created_at", "versions"):
        print(f"{key:<16}{m[key]}")
    return 0
