"""``cbir search``: embed one image the way the index was embedded and print the nearest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retrieval import Collection, ConfigError, Hit, load_image, open_collection
from retrieval.index import search_hits, similar_hits

__all__ = ["print_hits", "run_search", "search_image"]


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


def run_search(args: argparse.Namespace) -> int:
    if (args.image is None) == (args.image_id is None):
        raise ConfigError("give either an IMAGE or --id N")
    collection = open_collection(Path(args.index), device=args.device,
                                 weights_file=args.weights_file, precision=args.precision,
                                 channels_last=args.channels_last, read_only=True)
    try:
        collection.index.set_search_params(nprobe=args.nprobe, ef_search=args.ef_search)
        if args.image_id is not None:
            hits = similar_hits(collection.index, args.image_id, args.k, qe_k=args.qe,
                                qe_alpha=args.qe_alpha)
        else:
            hits = search_image(collection, Path(args.image), args.k, qe_k=args.qe,
                                qe_alpha=args.qe_alpha)
    finally:
        collection.close()
    query = str(args.image) if args.image is not None else f"id:{args.image_id}"
    print_hits(query, hits, as_json=args.json)
    return 0
