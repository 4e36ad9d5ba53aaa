"""``cbir search``: embed query images the way the index was embedded and print the nearest.

Many queries (files, and folders expanded to their images) are searched in one process: the index
and the network load once, the queries are embedded in chunks and each chunk searched in one call.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.argtypes import Subparsers, from_namespace, non_negative, positive
from indexer.options import (
    RuntimeOptions,
    add_rerank_flags,
    add_runtime_flags,
    add_search_param_flags,
)
from retrieval import (
    Box,
    Collection,
    ConfigError,
    Hit,
    ImageDecodeError,
    crop_box,
    list_images,
    load_image,
    open_collection,
    parse_box,
)
from retrieval.index import (
    UPLOADS_DIR_NAME,
    Diffusion,
    RecordFilter,
    search_hits,
    similar_hits,
    source_roots,
)

__all__ = ["CHUNK", "SearchOptions", "add_parser", "print_hits", "query_paths", "run_search",
           "search_image"]

#: query images embedded (and searched) together.
CHUNK = 16


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("search", help=help_text)
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("images", metavar="IMAGE", nargs="*",
                   help="query image files, or folders (searched with each image under them)")
    p.add_argument("--id", dest="image_id", type=int, default=None,
                   help="search with stored image N's vector (nothing decoded; N left out)")
    p.add_argument("--bbox", default=None, metavar="X1,Y1,X2,Y2",
                   help="search a region of the one IMAGE (or of --id's file): integer pixels "
                        "of the upright image, x2 and y2 excluded; cut at full resolution and "
                        "embedded as a whole image")
    add_rerank_flags(p, build=False)
    p.add_argument("-k", type=positive, default=10, help="number of results (default 10)")
    p.add_argument("--offset", type=non_negative, default=0,
                   help="skip the best N hits (results N+1 … N+k)")
    p.add_argument("--min-score", dest="min_score", type=float, default=None,
                   help="leave out hits scoring below this")
    p.add_argument("--folder", default=None,
                   help="only images under this folder (relative to the indexed folder)")
    p.add_argument("--added-after", dest="added_after", type=float, default=None,
                   metavar="SECONDS", help="only images added at or after this (Unix time)")
    p.add_argument("--added-before", dest="added_before", type=float, default=None,
                   metavar="SECONDS", help="only images added before this (Unix time)")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="TAG",
                   help="only images holding this tag (repeatable: all must match)")
    p.add_argument("--diffusion", default=None, metavar="SPEC",
                   help="diffusion re-ranking on the index's neighbour graph: on, off, or "
                        "name=value pairs over the index's settings, e.g. k=30,alpha=0.95 "
                        "(default: the index's)")
    p.add_argument("--json", action="store_true", help="print one JSON line per query")
    add_search_param_flags(p, "for this search (default: the index's)")
    add_runtime_flags(p)
    p.set_defaults(options=SearchOptions.from_args, run=run_search)


@dataclass(frozen=True)
class SearchOptions:
    """``cbir search``'s flags, typed (``images`` as given: they are printed back)."""

    index: Path
    runtime: RuntimeOptions
    images: tuple[str, ...] = ()
    image_id: int | None = None
    bbox: str | None = None
    k: int = 10
    offset: int = 0
    min_score: float | None = None
    folder: str | None = None
    added_after: float | None = None
    added_before: float | None = None
    tags: tuple[str, ...] = ()
    qe: int | None = None
    qe_alpha: float | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    json: bool = False
    diffusion: str | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> SearchOptions:
        return from_namespace(cls, ns, index=Path(ns.index), images=tuple(ns.images),
                              runtime=RuntimeOptions.from_args(ns), tags=tuple(ns.tags))

    @property
    def upload_roots(self) -> tuple[str, ...]:
        """The service's default uploads folder: folders are named there too (as the service
        names them)."""
        return (str((self.index / UPLOADS_DIR_NAME).resolve()),)

    @property
    def where(self) -> RecordFilter | None:
        where = RecordFilter(self.folder, self.added_after, self.added_before, self.tags,
                             roots=self.upload_roots)
        return where if where.active else None

    @property
    def box(self) -> Box | None:
        return None if self.bbox is None else parse_box(self.bbox)

    def check(self) -> None:
        """Refuse flag combinations before anything is loaded (:class:`ConfigError`)."""
        if bool(self.images) == (self.image_id is not None):
            raise ConfigError("give either IMAGE… or --id N")
        if self.min_score is not None and self.min_score != self.min_score:
            raise ConfigError("--min-score must be a number")
        self.where  # noqa: B018 - refuses a bad filter now
        if self.diffusion is not None:
            Diffusion.parse(self.diffusion)  # refuses a bad spec before anything is loaded
        if self.bbox is not None:
            self.box  # noqa: B018 - parses (and refuses) the box now
            if self.image_id is None and (len(self.images) != 1 or Path(self.images[0]).is_dir()):
                raise ConfigError("--bbox needs exactly one IMAGE file (or --id N)")


def search_image(collection: Collection, image_path: Path, k: int, *, qe_k: int | None = None,
                 qe_alpha: float | None = None) -> list[Hit]:
    """The ``k`` stored images nearest to the image at ``image_path``, best first (αQE as the
    index's manifest says unless ``qe_k`` / ``qe_alpha`` are given)."""
    xq = collection.embedder.embed_images([load_image(image_path)])
    return search_hits(collection.index, xq, k, qe_k=qe_k, qe_alpha=qe_alpha)[0]


def print_hits(query: str, hits: list[Hit], *, as_json: bool,
               roots: Sequence[str] = ("/",)) -> None:
    """The hits as a table, or one JSON line (each hit's ``folder`` named in ``roots``:
    :func:`~retrieval.index.source_roots`)."""
    if as_json:
        results = [{"id": h.id, "path": h.record.path, "score": float(str(np.float32(h.score))),
                    "tags": list(h.record.tags), "folder": h.record.folder_in(roots)}
                   for h in hits]
        print(json.dumps({"query": query, "results": results}))
        return
    print(f"query: {query}")
    print(f"{'rank':>4}  {'score':>8}  {'id':>8}  path")
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>4}  {h.score:8.4f}  {h.id:>8}  {h.record.path}")


def query_paths(given: Sequence[str]) -> list[str]:
    """The query files: each file as given, each folder expanded to the images under it."""
    out: list[str] = []
    for name in given:
        out.extend(str(p) for p in list_images(name)) if Path(name).is_dir() else out.append(name)
    return out


def run_search(opts: SearchOptions) -> int:
    opts.check()
    queries = query_paths(opts.images)
    run = opts.runtime
    collection = open_collection(opts.index, device=run.device, weights_file=run.weights_file,
                                 precision=run.precision, channels_last=run.channels_last,
                                 read_only=True, engine_cache=run.engine_cache)
    failed = 0
    try:
        collection.index.set_search_params(nprobe=opts.nprobe, ef_search=opts.ef_search)
        roots = source_roots(collection.index, opts.upload_roots)
        if opts.image_id is not None:
            print_hits(f"id:{opts.image_id}", _by_id(collection, opts), as_json=opts.json,
                       roots=roots)
            return 0
        for query, hits in _searched(collection, queries, opts):
            if isinstance(hits, ImageDecodeError):
                print(f"cbir: error: {hits}", file=sys.stderr)
                failed += 1
            else:
                print_hits(query, hits, as_json=opts.json, roots=roots)
    finally:
        collection.close()
    return 1 if failed else 0


def _hits(collection: Collection, images: list[Image.Image], opts: SearchOptions,
          exclude: int | None = None) -> list[list[Hit]]:
    xq = collection.embedder.embed_images(images)
    return search_hits(collection.index, xq, opts.k, qe_k=opts.qe, qe_alpha=opts.qe_alpha,
                       exclude=exclude, offset=opts.offset, min_score=opts.min_score,
                       where=opts.where, diffusion=opts.diffusion)


def _by_id(collection: Collection, opts: SearchOptions) -> list[Hit]:
    assert opts.image_id is not None
    box = opts.box
    if box is None:
        return similar_hits(collection.index, opts.image_id, opts.k, qe_k=opts.qe,
                            qe_alpha=opts.qe_alpha, offset=opts.offset, min_score=opts.min_score,
                            where=opts.where, diffusion=opts.diffusion)
    image = crop_box(load_image(collection.index.get(opts.image_id).path), box)
    return _hits(collection, [image], opts, exclude=opts.image_id)[0]


def _searched(collection: Collection, queries: list[str],
              opts: SearchOptions) -> Iterator[tuple[str, list[Hit] | ImageDecodeError]]:
    """Each query with its hits (or its decode error), in order, :data:`CHUNK` at a time."""
    box = opts.box
    for start in range(0, len(queries), CHUNK):
        chunk = queries[start:start + CHUNK]
        decoded: list[Image.Image | ImageDecodeError] = []
        for name in chunk:
            try:
                image = load_image(name)
                decoded.append(image if box is None else crop_box(image, box))
            except ImageDecodeError as exc:
                decoded.append(exc)
        images = [d for d in decoded if isinstance(d, Image.Image)]
        rows = iter(_hits(collection, images, opts) if images else [])
        for name, d in zip(chunk, decoded, strict=True):
            yield name, next(rows) if isinstance(d, Image.Image) else d
