"""``cbir index remove`` and ``cbir index info``: the index alone, no network (no torch)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from indexer.argtypes import Subparsers, from_namespace
from retrieval import NotFoundError
from retrieval.index import (
    UPLOADS_DIR_NAME,
    ImageIndex,
    IndexStore,
    KeepsGraph,
    open_index,
    store_spec,
    sweep_files,
)

__all__ = ["InfoOptions", "RemoveOptions", "add_info_parser", "add_remove_parser",
           "clean_leftovers", "run_info", "run_remove"]


def add_remove_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("remove", help=help_text)
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("ids", nargs="+", type=int, metavar="ID",
                   help="ids to remove (as search and add print them); all or none: an unknown "
                        "id removes nothing")
    p.set_defaults(options=RemoveOptions.from_args, run=run_remove)


def add_info_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("info", help=help_text)
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(options=InfoOptions.from_args, run=run_info)


@dataclass(frozen=True)
class RemoveOptions:
    """``cbir index remove``'s flags, typed."""

    index: Path
    ids: tuple[int, ...]

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> RemoveOptions:
        return from_namespace(cls, ns, index=Path(ns.index), ids=tuple(ns.ids))


@dataclass(frozen=True)
class InfoOptions:
    """``cbir index info``'s flags, typed (``index`` as given: it is printed back)."""

    index: str
    json: bool = False

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> InfoOptions:
        return from_namespace(cls, ns)


def clean_leftovers(index: IndexStore) -> None:
    """What killed writes left: the index's own temporaries go on open, the uploads' here.

    Only the FAISS+SQLite store keeps uploads beside it; a Milvus store has nothing to sweep.
    """
    if isinstance(index, ImageIndex):
        sweep_files(index, index.path / UPLOADS_DIR_NAME)


def run_remove(opts: RemoveOptions) -> int:
    """All or nothing: an id that names no image removes nothing (exit 1, the unknown ids named).

    The write lock is held from the check to the removal, so no other writer can change the
    answer in between.
    """
    wanted = list(dict.fromkeys(opts.ids))
    with open_index(opts.index) as index:
        clean_leftovers(index)
        known = {r.id for r in index.records(wanted)}
        missing = [i for i in wanted if i not in known]
        if missing:
            raise NotFoundError(f"no image with id {', '.join(map(str, missing))} in "
                                f"{opts.index}; nothing removed")
        removed = index.remove(wanted)
    print(f"removed {len(removed)} images")
    return 0


def run_info(opts: InfoOptions) -> int:
    with open_index(Path(opts.index), read_only=True) as index:
        count, searchable, size = index.count, index.ntotal, index.size_on_disk()
        m = index.manifest.to_dict()
        kept = index.graph_k if isinstance(index, KeepsGraph) else 0
    store = store_spec(Path(opts.index))
    if opts.json:
        print(json.dumps({"index": str(opts.index), "count": count, "searchable": searchable,
                          "size_bytes": size, "graph_k": kept, "manifest": m,
                          "store": store.to_dict()}, indent=2))
        return 0
    print(f"{'index':<16}{opts.index}")
    print(f"{'images':<16}{count} ({searchable} searchable)")
    if store.kind != "faiss":
        print(f"{'store':<16}{store.kind} {store.uri} collection {store.collection}")
    print(f"{'size':<16}{size / 1e6:.1f} MB")
    print(f"{'graph':<16}" + (f"{kept} neighbours per image, kept with every add and remove"
                              if kept else "none (build with --graph-k K to keep one)"))
    for key in ("backbone", "weights", "max_side", "scales", "pooling", "pooling_params",
                "whiten", "whiten_dim", "dim", "faiss_factory", "search_params", "qe_k",
                "qe_alpha", "dba_k", "dba_alpha", "graph_k", "diffusion", "preset",
                "created_at", "versions"):
        print(f"{key:<16}{m.get(key)}")
    return 0
