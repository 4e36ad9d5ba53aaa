"""``cbir search``: embed one image the way the index was embedded and print the nearest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retrieval.collection import open_collection
from retrieval.images import load_image

__all__ = ["run_search"]


def run_search(args: argparse.Namespace) -> int:
    image = load_image(Path(args.image))
    collection = open_collection(Path(args.index), device=args.device,
                                 weights_file=args.weights_file, precision=args.precision,
                                 channels_last=args.channels_last)
    try:
        collection.index.set_search_params(nprobe=args.nprobe, ef_search=args.ef_search)
        xq = collection.embedder.embed([image])
        hits = collection.index.search_records(xq, args.k)[0]
    finally:
        collection.close()
    if args.json:
        results = [{"id": h.id, "path": h.record.path, "score": round(float(h.score), 6)}
                   for h in hits]
        print(json.dumps({"query": str(args.image), "results": results}))
        return 0
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>3}  {h.score:8.4f}  {h.id:>8}  {h.record.path}")
    return 0
