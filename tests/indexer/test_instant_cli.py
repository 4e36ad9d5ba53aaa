"""An instant CLI: commands that run no network never import torch (checked in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.index import ImageIndex, Manifest, NewImage
from tests.conftest import REPO

HEAVY = ("torch", "torchvision", "matplotlib")
PROBE = f"""
import json, sys
sys.argv = ["cbir", *json.loads(sys.argv[1])]
from indexer.cli import main
try:
    code = main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def run_cli(*argv: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=REPO, text=True,
                         capture_output=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "idx"
    m = Manifest(backbone="squeezenet1_1", weights="random:seed=0", max_side=64, pooling="sum",
                 dim=8, faiss_factory="Flat")
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with ImageIndex.create(path, m) as index:
        index.add([NewImage(f"{i}.jpg", f"{i:064x}", 8, 8) for i in range(4)], x,
                  np.eye(4, 16, dtype=np.float32))
    return path


@pytest.mark.parametrize("argv", [
    ["--help"], ["index", "--help"], ["index", "info", "--index", "{idx}"],
    ["duplicates", "--index", "{idx}", "--json"],
    ["-q", "index", "remove", "--index", "{idx}", "4"],
    ["index", "migrate", "--index", "{idx}", "--to", "{idx}-copy"],
    ["index", "export", "--index", "{idx}", "--out", "{idx}.parquet"],
])
def test_no_torch(index_dir: Path, argv: list[str]) -> None:
    result = run_cli(*(a.replace("{idx}", str(index_dir)) for a in argv))
    assert result == {"code": 0, "loaded": []}


def test_help_still_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "indexer", "--help"], cwd=REPO, text=True,
                         capture_output=True, timeout=60, check=True).stdout
    for command in ("index", "search", "duplicates", "serve", "demo", "evaluate"):
        assert f"    {command} " in out
