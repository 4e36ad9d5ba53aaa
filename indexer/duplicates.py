"""``cbir duplicates``: groups of near-duplicate images in an index (no network, no torch)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.argtypes import Subparsers, cosine, from_namespace
from retrieval.index import (
    DEFAULT_LAYOUT_THRESHOLD,
    DEFAULT_THRESHOLD,
    DuplicateGroup,
    DuplicateRule,
    ImageIndex,
    duplicate_page,
)

__all__ = ["DuplicatesOptions", "add_parser", "find_groups", "run_duplicates"]

PAGE_SCAN = 5000


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser(
        "duplicates", help=help_text,
        description="Pairs whose global cosine is >= --threshold are candidates; a candidate "
                    "is a duplicate when the layouts of the two images (their feature maps "
                    "on a 4x4 grid) have cosine >= --layout-threshold. Pairs form groups, best "
                    "first. Defaults measured on paris250 (README, Near-duplicates).")
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("--threshold", type=cosine, default=DEFAULT_THRESHOLD,
                   help=f"global cosine of candidates (default {DEFAULT_THRESHOLD})")
    p.add_argument("--layout-threshold", dest="layout_threshold", type=cosine,
                   default=DEFAULT_LAYOUT_THRESHOLD,
                   help=f"layout cosine of duplicates (default {DEFAULT_LAYOUT_THRESHOLD})")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(options=DuplicatesOptions.from_args, run=run_duplicates)


@dataclass(frozen=True)
class DuplicatesOptions:
    """``cbir duplicates``'s flags, typed (``index`` as given: it is printed back)."""

    index: str
    rule: DuplicateRule
    json: bool = False

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> DuplicatesOptions:
        return from_namespace(cls, ns, rule=DuplicateRule(
            threshold=ns.threshold, layout_threshold=ns.layout_threshold))


def find_groups(index: ImageIndex, rule: DuplicateRule) -> list[DuplicateGroup]:
    """Every group of the index, best first (pages through :func:`duplicate_page`)."""
    groups: list[DuplicateGroup] = []
    cursor: int | None = 0
    while cursor is not None:
        page = duplicate_page(index, rule, cursor=cursor, limit=PAGE_SCAN, scan=PAGE_SCAN)
        groups += page.groups
        cursor = page.next_cursor
    return sorted(groups, key=lambda g: (-g.score, min(g.members)))


def _as_json(group: DuplicateGroup, paths: dict[int, str]) -> dict[str, Any]:
    scores = group.member_scores()
    return {"score": round(group.score, 6), "truncated": group.truncated,
            "members": [{"id": m, "path": paths.get(m, ""), "score": round(scores[m], 6)}
                        for m in group.members],
            "pairs": [{"a": p.a, "b": p.b, "score": round(p.score, 6),
                       "global_score": round(p.global_score, 6),
                       "layout_score": None if p.layout_score is None else round(p.layout_score, 6)}
                      for p in group.pairs]}


def run_duplicates(opts: DuplicatesOptions) -> int:
    rule = opts.rule
    with ImageIndex.open(Path(opts.index), read_only=True) as index:
        groups = find_groups(index, rule)
        ids = sorted({m for g in groups for m in g.members})
        paths = {r.id: r.path for r in index.records(ids)}
    if opts.json:
        print(json.dumps({"index": opts.index, "threshold": rule.threshold,
                          "layout_threshold": rule.layout_threshold,
                          "groups": [_as_json(g, paths) for g in groups]}, indent=2))
        return 0
    for n, group in enumerate(groups, 1):
        scores = group.member_scores()
        print(f"group {n}: {len(group.members)} images, best score {group.score:.3f}"
              + (" (truncated)" if group.truncated else ""))
        for m in group.members:
            print(f"  {m}\t{scores[m]:.3f}\t{paths.get(m, '')}")
    print(f"{len(groups)} groups, {sum(len(g.members) for g in groups)} images "
          f"(threshold {rule.threshold}, layout threshold {rule.layout_threshold})")
    return 0
