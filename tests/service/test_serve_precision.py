"""``cbir serve`` embeds queries in the precision the index was built with, unless
``--precision`` says otherwise; ``/stats`` reports both (issue 21). Real ``cbir serve``
processes on an index built with ``--precision bf16`` (a CPU without bf16 units builds fp32 by
design, so the test skips there)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from indexer import cli
from retrieval.features import cpu_features
from tests.service.conftest import BUILD, Server

BF16_UNITS = cpu_features(ask_openvino=False).bf16


@pytest.fixture(scope="module")
def bf16_index(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("bf16") / "index"
    assert cli.main(["index", "build", "--images", str(image_folder), "--index", str(index),
                     *BUILD, "--precision", "bf16"]) == 0
    return index


@pytest.mark.skipif(not BF16_UNITS, reason="this CPU has no AVX512-BF16/AMX-BF16 units: "
                    "--precision bf16 runs fp32 here")
@pytest.mark.parametrize(("flags", "runs"), [([], "bf16"), (["--precision", "fp32"], "fp32")],
                         ids=["the index's", "the flag's"])
def test_serve_runs_the_index_precision_unless_told_otherwise(
    bf16_index: Path, image_folder: Path, tmp_path: Path, flags: list[str], runs: str,
) -> None:
    server = Server(bf16_index, tmp_path / "serve.log", {},
                    command=[sys.executable, "-m", "indexer", "serve", "--index",
                             str(bf16_index), *flags])
    try:
        server.start()
        with server.client() as client:
            stats = client.get("/stats").json()
            query = next(image_folder.rglob("img05.*"))
            hits = client.post("/search", params={"k": 1},
                               files={"image": (query.name, query.read_bytes())}).json()
    finally:
        server.stop()
    assert stats["manifest"]["precision"] == "bf16"
    assert stats["precision"] == runs
    assert Path(hits["results"][0]["path"]).name == query.name
