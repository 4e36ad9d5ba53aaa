"""``cbir demo`` (what ``make run`` runs): index sample photos and search them.

The images are ``--images DIR`` or, by default, the public-domain sample photographs that
scikit-image ships. Weights: VGG16's ImageNet weights when torchvision has them (cached or
downloadable); otherwise the file named by ``CBIR_WEIGHTS``; otherwise seeded random weights,
said plainly, because the demo must run on a machine without network. Production commands
(``cbir index build``, ``cbir serve``) never fall back like this.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from retrieval.backbone import load_backbone
from retrieval.errors import ConfigError, WeightsError

__all__ = ["add_parser", "choose_weights", "sample_images_dir"]

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


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="index sample photos and serve them (make run)")
    p.add_argument("--images", default="", help="folder of images (default: scikit-image's)")
    p.add_argument("--index", default="demo/index", help="where to build the demo index")
    p.add_argument("--backbone", default="vgg16")
    p.add_argument("--max-side", dest="max_side", type=int, default=512)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-serve", dest="serve", action="store_false",
                   help="build the index and run one sample search, then stop")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from indexer.cli import main as cbir

    images = Path(args.images) if args.images else sample_images_dir()
    weights = choose_weights(args.backbone, os.environ.get("CBIR_WEIGHTS"))
    index = Path(args.index)
    if index.exists():
        shutil.rmtree(index)
    code = cbir(["index", "build", "--images", str(images), "--index", str(index),
                 "--backbone", args.backbone, "--weights", weights,
                 "--max-side", str(args.max_side)])
    if code != 0:
        return code
    from retrieval.images import list_images

    query = list_images(images)[0]
    print(f"sample search for {query}:")
    code = cbir(["search", "--index", str(index), str(query), "-k", "5"])
    if code != 0 or not args.serve:
        return code
    print(f"serving on http://{args.host}:{args.port}/")
    return cbir(["serve", "--index", str(index), "--host", args.host, "--port", str(args.port)])
