"""``cbir``: parse flags, call the library, turn errors into exit codes.

Exit codes: 0 success, 1 a failure (one readable line on stderr), 2 a usage error (bad flag, bad
option value, unknown name), 130 interrupted (the index directory stays usable).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from indexer.options import add_embedding_flags, positive
from retrieval import ConfigError, RetrievalError
from retrieval.features import PRECISIONS
from retrieval.index import MAX_RERANK_K
from retrieval.pooling import pooling_names

__all__ = ["build_parser", "main"]



def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--weights-file", dest="weights_file", default=None,
                   help="read the network weights from this file instead of where the index "
                        "says (checked against the index's weights identity)")
    p.add_argument("--threads", type=positive, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS),
                   help="run the network under autocast (bf16, fp16; meant for cuda) or not "
                        "(fp32, the default)")
    p.add_argument("--channels-last", dest="channels_last", action="store_true",
                   help="NHWC memory layout for the network (faster with cuda tensor cores)")


def _add_build(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from indexer import build

    p = sub.add_parser("build", help="index a folder of images into a new index directory")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--index", required=True, help="index directory to create (or --resume)")
    add_embedding_flags(p, one_pooling=True, pooling_default="sum",
                        pooling_help=f"one of {', '.join(pooling_names())} (default sum)")
    p.add_argument("--whiten", action="store_true", help="learn PCA-whitening")
    p.add_argument("--train-images", dest="train_images", default=None,
                   help="folder to learn whitening / MOP codebooks on (default: a sample of "
                        "--images)")
    p.add_argument("--train-sample", dest="train_sample", type=positive, default=500,
                   help="at most this many training images (default 500)")
    p.add_argument("--faiss", default="Flat",
                   help="FAISS factory string, e.g. Flat, HNSW32, IVF1024,Flat, IVF1024,PQ64")
    _add_search_params(p, "stored in the index (default for IVF: nprobe 16)")
    _add_rerank(p, build=True)
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=None,
                   help="images per forward pass (default: 1 on cpu, where batching is slower; "
                        "16 on cuda)")
    p.add_argument("--workers", type=positive, default=None,
                   help="image decoding threads (default: torch's CPU threads on cpu, the CPU "
                        "count up to 8 on cuda)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted build without re-embedding stored images")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    _add_runtime(p)
    p.set_defaults(handler=build.run_build)


def _add_index(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from indexer import build

    index = sub.add_parser("index", help="build and maintain an index directory")
    isub = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")
    _add_build(isub)
    p = isub.add_parser("add", help="embed and add images to an index")
    p.add_argument("--index", required=True)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=None,
                   help="images per forward pass (default: 1 on cpu, where batching is slower; "
                        "16 on cuda)")
    p.add_argument("--workers", type=positive, default=None, help="image decoding threads")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    _add_runtime(p)
    p.set_defaults(handler=build.run_add)
    p = isub.add_parser("remove", help="remove images by id")
    p.add_argument("--index", required=True)
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.set_defaults(handler=build.run_remove)
    p = isub.add_parser("info", help="manifest, counts and size on disk")
    p.add_argument("--index", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=build.run_info)


def _add_search(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from indexer import search

    p = sub.add_parser("search", help="find the images most like IMAGE (or stored image --id)")
    p.add_argument("--index", required=True)
    p.add_argument("image", metavar="IMAGE", nargs="?")
    p.add_argument("--id", dest="image_id", type=int, default=None,
                   help="search with stored image N's vector (nothing decoded; N left out)")
    _add_rerank(p, build=False)
    p.add_argument("-k", type=positive, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_search_params(p, "for this search (default: the index's)")
    _add_runtime(p)
    p.set_defaults(handler=search.run_search)


def _add_rerank(p: argparse.ArgumentParser, *, build: bool) -> None:
    def k(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_RERANK_K:
            raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_RERANK_K}, "
                                             f"got {text!r}")
        return value

    scope = "stored as the index's default" if build else "for this search (default: the index's)"
    p.add_argument("--qe", type=k, default=0 if build else None,
                   help=f"αQE: expand the query with its K nearest (0: off), {scope}")
    p.add_argument("--qe-alpha", dest="qe_alpha", type=float, default=3.0 if build else None,
                   help="αQE weight exponent (default 3)")
    if build:
        p.add_argument("--dba", type=k, default=0,
                       help="DBA: index each vector averaged with its K nearest (0: off)")
        p.add_argument("--dba-alpha", dest="dba_alpha", type=float, default=3.0,
                       help="DBA weight exponent (default 3)")


def _add_search_params(p: argparse.ArgumentParser, scope: str) -> None:
    p.add_argument("--nprobe", type=positive, default=None,
                   help=f"IVF lists probed per query, {scope}")
    p.add_argument("--ef-search", dest="ef_search", type=positive, default=None,
                   help=f"HNSW candidate list size, {scope}")


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve an index over HTTP (FastAPI)")
    p.add_argument("--index", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default=None)
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    """Hand over to the service package in a fresh interpreter (the two never import each other)."""
    argv = [sys.executable, "-m", "service", "--index", args.index, "--host", args.host,
            "--port", str(args.port)]
    if args.device:
        argv += ["--device", args.device]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cbir", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_index(sub)
    _add_search(sub)
    _add_serve(sub)
    from indexer import demo

    demo.add_parser(sub)
    from indexer import evaluate

    evaluate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="cbir: %(message)s", stream=sys.stderr)
    logging.getLogger("PIL").setLevel(logging.WARNING)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        print(f"cbir: error: {exc}", file=sys.stderr)
        return 2
    except RetrievalError as exc:
        print(f"cbir: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cbir: interrupted; the index directory is usable (continue a build with --resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
