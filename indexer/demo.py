"""``cbir demo`` (what ``make run`` runs): index sample photos and search them.

The images are ``--images DIR`` or, by default, the public-domain sample photographs that
scikit-image ships (the few it ships that are not photographs the decoder takes, such as a
multi-page TIFF, are left out with one calm line). Weights: ``--weights FILE`` (``make run
BACKBONE=squeezenet1_1 WEIGHTS=FILE``) when given; else the ``--backbone``'s ImageNet weights
when torchvision has them (cached or downloadable); otherwise the file named by ``CBIR_WEIGHTS``;
otherwise seeded random weights, said plainly, because the demo must run on a machine without
network. Production commands (``cbir index build``, ``cbir serve``) never fall back like this.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from indexer.argtypes import Subparsers, from_namespace
from indexer.progress import progress_bar
from indexer.search import print_hits, search_image
from indexer.serve import ServeOptions
from retrieval import (
    ConfigError,
    Embedder,
    EmbedderConfig,
    WeightsError,
    create_collection,
    ingest,
    list_images,
)
from retrieval.features import load_backbone
from retrieval.index import KnowsSources

__all__ = ["DemoOptions", "add_parser", "choose_weights", "run_demo", "sample_images_dir"]

log = logging.getLogger("cbir")


def sample_images_dir() -> Path:
    """The folder of sample photographs scikit-image ships (no download)."""
    try:
        import skimage
    except ImportError as exc:
        raise ConfigError("no --images given and scikit-image (the sample photos) is not "
                          "installed: pip install 'cbir[demo]'") from exc
    return Path(skimage.__file__).parent / "data"


def choose_weights(backbone: str, weights_env: str | None) -> str:
    """imagenet if available, else ``weights_env`` (CBIR_WEIGHTS), else random — said plainly."""
    try:
        load_backbone(backbone, "imagenet", allow_download=True)
        return "imagenet"
    except WeightsError as exc:
        reason = str(exc).split(" (")[0]
    if weights_env:
        print(f"cbir demo: {reason}; using CBIR_WEIGHTS={weights_env}", file=sys.stderr)
        return weights_env
    print(f"cbir demo: {reason} and CBIR_WEIGHTS is not set: using RANDOM weights, so "
          "similarities are not meaningful", file=sys.stderr)
    return "random"


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("demo", help=help_text)
    p.add_argument("--images", default="", help="folder of images (default: scikit-image's)")
    p.add_argument("--index", default="demo/index", help="where to build the demo index")
    p.add_argument("--backbone", default="vgg16", help="network to embed with (default vgg16)")
    p.add_argument("--max-side", dest="max_side", type=int, default=512,
                   help="longer image side fed to the network (default 512)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--weights", default=None,
                   help="imagenet, random or a state-dict file for --backbone (default: "
                        "imagenet if torchvision has it, else $CBIR_WEIGHTS, else random)")
    p.add_argument("--no-serve", dest="serve", action="store_false",
                   help="build the index and run one sample search, then stop")
    p.set_defaults(options=DemoOptions.from_args, run=run_demo)


@dataclass(frozen=True)
class DemoOptions:
    """``cbir demo``'s flags, typed (``images`` empty: scikit-image's sample photos)."""

    images: str = ""
    index: Path = Path("demo/index")
    backbone: str = "vgg16"
    max_side: int = 512
    host: str = "127.0.0.1"
    port: int = 8000
    serve: bool = True
    weights: str | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> DemoOptions:
        return from_namespace(cls, ns, index=Path(ns.index))


@contextmanager
def _quiet_skips() -> Iterator[None]:
    """The demo lists the sample files it could not index once, calmly, instead of a warning
    per file (scikit-image ships a multi-page TIFF among its photographs)."""
    logger = logging.getLogger("retrieval._ingest")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_demo(opts: DemoOptions) -> int:
    images = Path(opts.images) if opts.images else sample_images_dir()
    weights = opts.weights or choose_weights(opts.backbone, os.environ.get("CBIR_WEIGHTS"))
    index = opts.index
    if index.exists():
        shutil.rmtree(index)
    paths = [p.resolve() for p in list_images(images)]
    if not paths:
        raise ConfigError(f"no images found under {images}")
    config = EmbedderConfig(backbone=opts.backbone, weights=weights, max_side=opts.max_side)
    embedder = Embedder.create(config)
    weights_file = None if weights in ("imagenet", "random") else str(Path(weights).resolve())
    collection = create_collection(index, embedder, weights_file=weights_file)
    try:
        if isinstance(collection.index, KnowsSources):  # API paths relative to it
            collection.index.set_images_root(str(images.resolve()))
        with progress_bar(len(paths)) as bar, _quiet_skips():
            report = ingest(collection, [(str(p), p) for p in paths], on_progress=bar.update)
        print(f"indexed {len(report.added)} images into {index}")
        if report.failures:
            names = ", ".join(Path(f.error.source).name for f in report.failures)
            print(f"(left out {len(report.failures)} files the decoder does not take: {names})")
        print(f"sample search for {paths[0]}:")
        print_hits(str(paths[0]), search_image(collection, paths[0], 5), as_json=False)
    finally:
        collection.close()
    if not opts.serve:
        return 0
    print(f"serving on http://{opts.host}:{opts.port}/")
    sys.stdout.flush()
    os.execv(sys.executable, ServeOptions(str(index), opts.host, opts.port).service_argv())
