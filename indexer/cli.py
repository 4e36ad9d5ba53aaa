"""``cbir``: parse flags, call the library, turn errors into exit codes.

Exit codes: 0 success, 1 a failure (one readable line on stderr), 2 a usage error (bad flag, bad
option value, unknown name), 130 interrupted (the index directory stays usable).

Start-up stays instant: the command is read from argv first and only its parser is built in full
(the others are stubs with their help line, so ``cbir --help`` still lists them), and each
command's module is imported by its builder. torch, torchvision, faiss and matplotlib are loaded
only by the commands that use them; ``--help``, ``index info``, ``index remove`` and
``duplicates`` never import torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from indexer.argtypes import positive
from retrieval import ConfigError, RetrievalError

__all__ = ["build_parser", "main"]

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Builder: TypeAlias = Callable[[Sub, Sequence[str] | None], None]


def _add_runtime(p: argparse.ArgumentParser) -> None:
    from retrieval.features import PRECISION_CHOICES

    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--weights-file", dest="weights_file", default=None,
                   help="read the network weights from this file instead of where the index "
                        "says (checked against the index's weights identity)")
    p.add_argument("--threads", type=positive, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                   help="fp32 (the default, exact), bf16 (autocast; channels_last on cpu), "
                        "fp16 (cuda), int8 (cpu, OpenVINO, calibrated and cached) or auto (the "
                        "fastest this processor runs natively; README \"Performance\")")
    p.add_argument("--channels-last", dest="channels_last", action="store_true",
                   help="NHWC memory layout for the network (faster with cuda tensor cores)")


def _add_build(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import build
    from indexer.options import add_embedding_flags
    from retrieval.pooling import pooling_names

    p = sub.add_parser("build", help=INDEX_COMMANDS["build"])
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
    _add_scale_out(p)
    _add_runtime(p)
    p.set_defaults(handler=build.run_build)


def _add_scale_out(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("scale-out engines (README \"Scale-out\")")
    group.add_argument("--store", default="faiss", choices=["faiss", "milvus"],
                       help="where vectors and records live: faiss (FAISS + SQLite in --index, "
                            "the default) or milvus (a Milvus collection; pip install "
                            "'cbir[milvus]')")
    group.add_argument("--milvus-uri", dest="milvus_uri", default=None,
                       help="with --store milvus: ./file.db (Milvus Lite) or http://host:19530")
    group.add_argument("--collection", default=None,
                       help="with --store milvus: the collection name")
    group.add_argument("--engine", default="local", choices=["local", "ray"],
                       help="embed here (local, the default) or on Ray Data (pip install "
                            "'cbir[ray]')")
    group.add_argument("--ray-address", dest="ray_address", default=None,
                       help="with --engine ray: auto or ray://HOST:10001 (default: a local Ray "
                            "started for this run)")
    group.add_argument("--ray-actors", dest="ray_actors", type=positive, default=None,
                       help="with --engine ray: embedding actors (default: one per GPU, else "
                            "one per 1 CPU of the cluster)")


def _add_add(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import build

    p = sub.add_parser("add", help=INDEX_COMMANDS["add"])
    p.add_argument("--index", required=True)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--batch-size", dest="batch_size", type=positive, default=None,
                   help="images per forward pass (default: 1 on cpu, where batching is slower; "
                        "16 on cuda)")
    p.add_argument("--workers", type=positive, default=None, help="image decoding threads")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    _add_runtime(p)
    p.set_defaults(handler=build.run_add)


def _add_remove(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import maintain

    p = sub.add_parser("remove", help=INDEX_COMMANDS["remove"])
    p.add_argument("--index", required=True)
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.set_defaults(handler=maintain.run_remove)


def _add_info(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import maintain

    p = sub.add_parser("info", help=INDEX_COMMANDS["info"])
    p.add_argument("--index", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=maintain.run_info)


def _add_index(sub: Sub, argv: Sequence[str] | None) -> None:
    index = sub.add_parser("index", help=COMMANDS["index"])
    isub = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")
    builders: dict[str, Builder] = {"build": _add_build, "add": _add_add,
                                    "remove": _add_remove, "info": _add_info}
    _add_commands(isub, INDEX_COMMANDS, builders, argv)


def _add_search(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import search

    p = sub.add_parser("search", help=COMMANDS["search"])
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
    from retrieval.index import MAX_RERANK_K

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


def _add_serve(sub: Sub, argv: Sequence[str] | None) -> None:
    p = sub.add_parser("serve", help=COMMANDS["serve"])
    p.add_argument("--index", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None,
                   help="fp32|bf16|int8|auto (CBIR_PRECISION, default fp32)")
    p.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    """Hand over to the service package in a fresh interpreter (the two never import each other)."""
    argv = [sys.executable, "-m", "service", "--index", args.index, "--host", args.host,
            "--port", str(args.port)]
    if args.device:
        argv += ["--device", args.device]
    if args.precision:
        argv += ["--precision", args.precision]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def _add_duplicates(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import duplicates

    duplicates.add_parser(sub)


def _add_demo(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import demo

    demo.add_parser(sub)


def _add_evaluate(sub: Sub, argv: Sequence[str] | None) -> None:
    from indexer import evaluate

    evaluate.add_parser(sub)


COMMANDS = {
    "index": "build and maintain an index directory",
    "search": "find the images most like IMAGE (or stored image --id)",
    "duplicates": "groups of near-duplicate images in an index",
    "serve": "serve an index over HTTP (FastAPI)",
    "demo": "index sample photos and serve them (make run)",
    "evaluate": "mAP of pooling variants on a retrieval benchmark",
}
INDEX_COMMANDS = {
    "build": "index a folder of images into a new index directory",
    "add": "embed and add images to an index",
    "remove": "remove images by id",
    "info": "manifest, counts and size on disk",
}
_BUILDERS: dict[str, Builder] = {
    "index": _add_index, "search": _add_search, "duplicates": _add_duplicates,
    "serve": _add_serve, "demo": _add_demo, "evaluate": _add_evaluate,
}


def _chosen(argv: Sequence[str], names: dict[str, str]) -> tuple[str | None, list[str]]:
    """The first positional word of ``argv`` if it names a command, and the words after it."""
    for i, word in enumerate(argv):
        if not word.startswith("-"):
            return (word, list(argv[i + 1:])) if word in names else (None, [])
    return None, []


def _add_commands(sub: Sub, names: dict[str, str], builders: dict[str, Builder],
                  argv: Sequence[str] | None) -> None:
    """The chosen command's full parser (all of them when ``argv`` is None), stubs for the rest."""
    chosen, rest = _chosen(argv, names) if argv is not None else (None, [])
    for name, help_text in names.items():
        if argv is None or name == chosen:
            builders[name](sub, None if argv is None else rest)
        else:
            sub.add_parser(name, help=help_text)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the command it names is built in full (fast start)."""
    parser = argparse.ArgumentParser(prog="cbir", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(sub, COMMANDS, _BUILDERS, argv)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(words).parse_args(words)
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
