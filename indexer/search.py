"""``cbir search``: embed one image the way the index was embedded and print the nearest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retrieval import Collection, Hit, load_image, open_collection

__all__ = ["print_hits", "run_search", "search_image"]


def search_image(collection: Collection, image_path: Path, k: int) -> list[Hit]:
    """The ``k`` stored images nearest to the image at ``image_path``, best first."""
    xq = collection.embedder.embed([load_image(image_path)])
    return collection.index.search_records(xq, k)[0]


def print_hits(query: str, hits: list[Hit], *, as_json: bool) -> None:
    if as_json:
        results = [{"id": h.id, "path": h.record.path, "score": round(float(h.score), 6)}
                   for h in hits]
        print(json.dumps({"query": query, "results": results}))
        return
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>3}  {h.score:8.4f}  {h.id:>8}  {h.record.path}")


def run_search(args: argparse.Namespace) -> int:
    collection = open_collection(Path(args.index), device=args.device,
                                 weights_file=args.weights_file, precision=args.precision,
                                 channels_last=args.channels_last, read_only=True)
    try:
        collection.index.set_search_params(nprobe=args.nprobe, ef_search=args.ef_search)
        hits = search_image(collection, Path(args.image), args.k)
    finally:
        collection.close()
    print_hits(str(args.image), hits, as_json=args.json)
    return 0
