"""``cbir search``: embed one image the way the index was embedded and print the nearest."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from indexer.argtypes import Subparsers, from_namespace, positive
from indexer.options import (
    RuntimeOptions,
    add_rerank_flags,
    add_runtime_flags,
    add_search_param_flags,
)
from retrieval import Collection, ConfigError, Hit, load_image, open_collection
from retrieval.index import search_hits, similar_hits

__all__ = ["SearchOptions", "add_parser", "print_hits", "run_search", "search_image"]


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("search", help=help_text)
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("image", metavar="IMAGE", nargs="?", help="the query image file")
    p.add_argument("--id", dest="image_id", type=int, default=None,
                   help="search with stored image N's vector (nothing decoded; N left out)")
    add_rerank_flags(p, build=False)
    p.add_argument("-k", type=positive, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_search_param_flags(p, "for this search (default: the index's)")
    add_runtime_flags(p)
    p.set_defaults(options=SearchOptions.from_args, run=run_search)


@dataclass(frozen=True)
class SearchOptions:
    """``cbir search``'s flags, typed (``image`` as given: it is printed back)."""

    index: Path
    runtime: RuntimeOptions
    image: str | None = None
    image_id: int | None = None
    k: int = 10
    qe: int | None = None
    qe_alpha: float | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    json: bool = False

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> SearchOptions:
        return from_namespace(cls, ns, index=Path(ns.index), runtime=RuntimeOptions.from_args(ns))


def search_image(collection: Collection, image_path: Path, k: int, *, qe_k: int | None = None,
                 qe_alpha: float | None = None) -> list[Hit]:
    """The ``k`` stored images nearest to the image at ``image_path``, best first (αQE as the
    index's manifest says unless ``qe_k`` / ``qe_alpha`` are given)."""
    xq = collection.embedder.embed_images([load_image(image_path)])
    return search_hits(collection.index, xq, k, qe_k=qe_k, qe_alpha=qe_alpha)[0]


def print_hits(query: str, hits: list[Hit], *, as_json: bool) -> None:
    if as_json:
        results = [{"id": h.id, "path": h.record.path, "score": round(float(h.score), 6)}
                   for h in hits]
        print(json.dumps({"query": query, "results": results}))
        return
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>3}  {h.score:8.4f}  {h.id:>8}  {h.record.path}")


def run_search(opts: SearchOptions) -> int:
    if (opts.image is None) == (opts.image_id is None):
        raise ConfigError("give either an IMAGE or --id N")
    run = opts.runtime
    collection = open_collection(opts.index, device=run.device, weights_file=run.weights_file,
                                 precision=run.precision, channels_last=run.channels_last,
                                 read_only=True, engine_cache=run.engine_cache)
    try:
        collection.index.set_search_params(nprobe=opts.nprobe, ef_search=opts.ef_search)
        if opts.image is not None:
            hits = search_image(collection, Path(opts.image), opts.k, qe_k=opts.qe,
                                qe_alpha=opts.qe_alpha)
        elif opts.image_id is not None:
            hits = similar_hits(collection.index, opts.image_id, opts.k, qe_k=opts.qe,
                                qe_alpha=opts.qe_alpha)
    finally:
        collection.close()
    query = opts.image if opts.image is not None else f"id:{opts.image_id}"
    print_hits(query, hits, as_json=opts.json)
    return 0
