"""The default near-duplicate rule, measured: 40 edited copies among the 250 paris250 photos.

Built by the real CLI (ImageNet SqueezeNet 1.1, SUM, max side 512: 290 forward passes, a few
minutes on 2 cores); ``cbir duplicates`` at its defaults must find ≥ 95 % of the copies with
≥ 90 % of the reported pairs true. With ``CBIR_DUPES_REPORT=FILE`` the test also writes the
precision/recall of every layout threshold (the README's table).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main
from retrieval.index import DuplicateRule, ImageIndex, duplicates_of
from tests.retrieval.neardup_set import make_set

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def dup_set(shared: Path, squeezenet_weights: Path,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[frozenset[str]]]:
    root = tmp_path_factory.mktemp("paris-dupes")
    pairs = make_set(shared / "data" / "paris250", root / "set")
    code = main(["-q", "index", "build", "--images", str(root / "set"), "--index",
                 str(root / "index"), "--backbone", "squeezenet1_1", "--weights",
                 str(squeezenet_weights), "--pooling", "sum", "--max-side", "512",
                 "--no-progress", "--threads", "2"])
    assert code == 0
    return root / "index", {frozenset((str(a), str(b))) for a, b in pairs}


def found_pairs(capsys: pytest.CaptureFixture[str], index: Path) -> set[frozenset[str]]:
    capsys.readouterr()
    assert main(["duplicates", "--index", str(index), "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    paths = {m["id"]: m["path"] for g in groups for m in g["members"]}
    return {frozenset((paths[p["a"]], paths[p["b"]])) for g in groups for p in g["pairs"]}


def test_default_rule_finds_the_copies(dup_set: tuple[Path, set[frozenset[str]]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    index, truth = dup_set
    assert len(truth) == 40
    found = found_pairs(capsys, index)
    tp = len(found & truth)
    recall, precision = tp / len(truth), tp / max(len(found), 1)
    assert recall >= 0.95 and precision >= 0.90, (recall, precision, sorted(found - truth))
    report = os.environ.get("CBIR_DUPES_REPORT")
    if report:
        Path(report).write_text(json.dumps(sweep(index, truth), indent=1))


def sweep(index_dir: Path, truth: set[frozenset[str]]) -> dict[str, object]:
    """Precision/recall of pairs for layout thresholds, candidates at global cosine 0.80."""
    with ImageIndex.open(index_dir, read_only=True) as index:
        ids = index.store.ids_after(0, 10**6)
        paths = {r.id: r.path for r in index.records(ids)}
        found = duplicates_of(index, ids, DuplicateRule(0.80, -1.0))
    pairs = {(p.a, p.b): p for ps in found.values() for p in ps}
    rows = []
    for t in np.round(np.arange(0.75, 0.951, 0.025), 3):
        kept = {frozenset((paths[a], paths[b])) for (a, b), p in pairs.items()
                if p.layout_score is not None and p.layout_score >= t}
        tp = len(kept & truth)
        rows.append({"layout_threshold": float(t), "precision": tp / max(len(kept), 1),
                     "recall": tp / len(truth), "false_pairs": len(kept) - tp})
    return {"candidates": len(pairs), "candidate_recall": len(
        {frozenset((paths[a], paths[b])) for a, b in pairs} & truth) / len(truth), "rows": rows}
