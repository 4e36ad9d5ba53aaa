"""``cbir``: parse flags, call the library, turn errors into exit codes.

Exit codes: 0 success, 1 a failure (one readable line on stderr), 2 a usage error (bad flag, bad
option value, unknown name), 130 interrupted (the index directory stays usable).

Each command lives in one module of this package: its parser (``add_parser``), a frozen dataclass
of typed options read from the parsed flags once (``Options.from_args``: below this dispatch, the
only code that sees the ``argparse.Namespace``) and ``run(options) -> exit code``. The parser's
defaults name the two; :func:`main` calls ``run(from_args(namespace))``.

Start-up stays instant: the command is read from argv first and only its parser is built in full
(the others are stubs with their help line, so ``cbir --help`` still lists them), and each
command's module is imported by its builder. torch, torchvision, faiss and matplotlib are loaded
only by the commands that use them; ``--help``, ``index info``, ``index remove`` and
``duplicates`` never import torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from indexer.argtypes import Subparsers
from retrieval import ConfigError, RetrievalError

__all__ = ["build_parser", "main"]

Builder: TypeAlias = Callable[[Subparsers, Sequence[str] | None], None]


def _add_build(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import build

    build.add_parser(sub, INDEX_COMMANDS["build"])


def _add_add(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import add

    add.add_parser(sub, INDEX_COMMANDS["add"])


def _add_remove(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import maintain

    maintain.add_remove_parser(sub, INDEX_COMMANDS["remove"])


def _add_info(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import maintain

    maintain.add_info_parser(sub, INDEX_COMMANDS["info"])


def _add_sync(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import watch

    watch.add_sync_parser(sub, INDEX_COMMANDS["sync"])


def _add_watch(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import watch

    watch.add_watch_parser(sub, INDEX_COMMANDS["watch"])


def _add_migrate(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import migrate

    migrate.add_migrate_parser(sub, INDEX_COMMANDS["migrate"])


def _add_export(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import migrate

    migrate.add_export_parser(sub, INDEX_COMMANDS["export"])
def _add_tag(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import tags

    tags.add_tag_parser(sub, INDEX_COMMANDS["tag"])


def _add_index(sub: Subparsers, argv: Sequence[str] | None) -> None:
    index = sub.add_parser("index", help=COMMANDS["index"])
    isub = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")
    builders: dict[str, Builder] = {"build": _add_build, "add": _add_add,
                                    "remove": _add_remove, "info": _add_info,
                                    "sync": _add_sync, "watch": _add_watch,
                                    "migrate": _add_migrate, "export": _add_export,
                                    "tag": _add_tag}
    _add_commands(isub, INDEX_COMMANDS, builders, argv)


def _add_search(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import search

    search.add_parser(sub, COMMANDS["search"])


def _add_serve(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import serve

    serve.add_parser(sub, COMMANDS["serve"])


def _add_duplicates(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import duplicates

    duplicates.add_parser(sub, COMMANDS["duplicates"])


def _add_demo(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import demo

    demo.add_parser(sub, COMMANDS["demo"])


def _add_evaluate(sub: Subparsers, argv: Sequence[str] | None) -> None:
    from indexer import evaluate

    evaluate.add_parser(sub, COMMANDS["evaluate"])


DESCRIPTION = """\
cbir: content-based image search. Index a folder of images, then find the images that look most
like a query image, from the command line or over HTTP."""
EPILOG = """\
examples:
  cbir index build --images photos/ --index photos-index
  cbir search --index photos-index query.jpg
  cbir serve --index photos-index        # then open http://127.0.0.1:8000

`cbir COMMAND --help` lists a command's flags. Exit codes: 0 done, 1 failed (one line on stderr),
2 a usage error, 130 interrupted (the index stays usable)."""

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
    "add": "embed and add images to an index (a file already stored, unchanged, at its path "
           "is skipped; a changed one replaces its record)",
    "remove": "remove images by id (all or none)",
    "info": "manifest, counts and size on disk",
    "sync": "bring an index in step with a folder once: new files added, changed ones "
            "re-embedded, moved ones re-pointed, vanished ones removed (for cron)",
    "watch": "sync, then follow the folder and apply each change as it happens",
    "migrate": "copy an index to another store (FAISS+SQLite <-> Milvus) without embedding",
    "export": "write an index's records and vectors to a Parquet file",
    "tag": "add or remove tags of stored images (all or none; nothing is embedded again)",
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


def _add_commands(sub: Subparsers, names: dict[str, str], builders: dict[str, Builder],
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
    parser = argparse.ArgumentParser(prog="cbir", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (how each index was opened, timings)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(sub, COMMANDS, _BUILDERS, argv)
    _verbosity_everywhere(parser)
    return parser


def _verbosity_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` / ``-q`` after the command too (``cbir search -v …``); set only where given, so a
    command's parser does not undo a ``cbir -v`` before it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for command in action.choices.values():
            if "-v" not in command._option_string_actions:
                command.add_argument("-v", "--verbose", action="store_true",
                                     default=argparse.SUPPRESS, help="debug logging")
                command.add_argument("-q", "--quiet", action="store_true",
                                     default=argparse.SUPPRESS, help="warnings and errors only")
            _verbosity_everywhere(command)


def _one_line(exc: BaseException) -> str:
    """An error as the one line the exit code promises (a library's message may hold several)."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


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
        code: int = args.run(args.options(args))
        return code
    except ConfigError as exc:
        print(f"cbir: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RetrievalError as exc:
        print(f"cbir: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cbir: interrupted; the index directory is usable (continue a build with --resume)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
