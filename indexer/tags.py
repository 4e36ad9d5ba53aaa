"""``cbir index tag``: add and remove tags of stored images (no network: nothing re-embedded)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from indexer.argtypes import Subparsers, from_namespace
from retrieval import ConfigError
from retrieval.index import KeepsTags, TagEdit, open_index

__all__ = ["TagOptions", "add_tag_parser", "run_tag"]


def add_tag_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("tag", help=help_text)
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("ids", nargs="+", type=int, metavar="ID",
                   help="ids to tag (as search and add print them); all or none: an unknown id "
                        "changes nothing")
    p.add_argument("--add", action="append", default=[], metavar="TAG",
                   help="add this tag (repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="TAG",
                   help="remove this tag (repeatable)")
    p.add_argument("--set", dest="replace", action="append", default=None, metavar="TAG",
                   help="replace all the tags by these (repeatable; --set '' clears them)")
    p.set_defaults(options=TagOptions.from_args, run=run_tag)


@dataclass(frozen=True)
class TagOptions:
    """``cbir index tag``'s flags, typed."""

    index: Path
    ids: tuple[int, ...]
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    replace: tuple[str, ...] | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> TagOptions:
        replace = None if ns.replace is None else tuple(t for t in ns.replace if t != "")
        return from_namespace(cls, ns, index=Path(ns.index), ids=tuple(ns.ids),
                              add=tuple(ns.add), remove=tuple(ns.remove), replace=replace)

    def edit(self) -> TagEdit:
        edit = TagEdit.of(self.add, self.remove, self.replace)
        if edit.empty:
            raise ConfigError("give --add TAG, --remove TAG or --set TAG")
        return edit


def run_tag(opts: TagOptions) -> int:
    """One transaction for every id (FAISS+SQLite); prints each image's tags after."""
    edit = opts.edit()
    with open_index(opts.index) as index:
        if not isinstance(index, KeepsTags):
            raise ConfigError(f"{opts.index}: this store keeps no tags")
        records = index.retag(list(dict.fromkeys(opts.ids)), edit)
    for record in records:
        print(f"{record.id}\t{','.join(record.tags)}")
    return 0
