"""``--precision`` end to end: the manifest records it, int8 indexes keep their engine, and an
index embedded in one precision answers queries embedded in another (fp32 <-> int8): same top 3,
every similarity within 0.002 of the same-precision one (seeded random SqueezeNet, side 64)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main
from retrieval import ImageIndex, load_image, open_collection
from retrieval.features import CpuFeatures
from tests.conftest import INT8_UNITS, needs_int8_units, scene
from tests.indexer.test_cli import BUILD, run_json

TOP = 12  # every image: scores are compared image by image


@pytest.fixture(scope="module")
def indexes(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("precision")
    out = {}
    for precision in ("fp32", "int8"):
        out[precision] = root / precision
        assert main(["index", "build", "--images", str(image_folder), "--index",
                     str(out[precision]), *BUILD, "--precision", precision]) == 0
    return out


def search(capsys: pytest.CaptureFixture[str], index: Path, query: Path, precision: str
           ) -> list[tuple[str, float]]:
    out = run_json(capsys, ["search", "--index", str(index), str(query), "-k", str(TOP),
                            "--json", "--precision", precision])
    return [(r["path"], r["score"]) for r in out["results"]]


@needs_int8_units
def test_manifest_records_precision_and_int8_keeps_its_engine(indexes: dict[str, Path]) -> None:
    assert json.loads((indexes["fp32"] / "manifest.json").read_text())["precision"] == "fp32"
    assert json.loads((indexes["int8"] / "manifest.json").read_text())["precision"] == "int8"
    pointer = json.loads((indexes["int8"] / "engines" / "int8.json").read_text())
    assert (indexes["int8"] / "engines" / f"{pointer['key']}.xml").is_file()


@pytest.mark.parametrize(("index", "query"), [("fp32", "int8"), ("int8", "fp32")])
def test_cross_precision_queries_agree_with_same_precision(
    indexes: dict[str, Path], image_folder: Path, capsys: pytest.CaptureFixture[str],
    index: str, query: str,
) -> None:
    for name in ("img01.*", "img05.*", "img10.*"):
        image = next(image_folder.rglob(name))
        same = search(capsys, indexes[index], image, index)
        cross = search(capsys, indexes[index], image, query)
        assert cross[0][0] == same[0][0] == str(image.resolve())
        assert cross[0][1] >= 0.999
        assert [p for p, _ in cross[:3]] == [p for p, _ in same[:3]]
        scores = dict(same)
        assert set(scores) == {p for p, _ in cross}
        assert max(abs(scores[p] - s) for p, s in cross) < 2e-3


@needs_int8_units
def test_second_int8_opener_loads_the_cached_engine(
    indexes: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="retrieval._engines"):
        collection = open_collection(indexes["int8"], precision="int8", read_only=True)
        collection.close()
    assert any("loaded" in r.getMessage() for r in caplog.records)


def test_a_cpu_without_vnni_opens_an_int8_index_in_fp32(indexes: dict[str, Path]) -> None:
    collection = open_collection(indexes["int8"], precision="int8", read_only=True,
                                 probe=lambda: CpuFeatures(frozenset()))
    try:
        assert collection.embedder.backbone.precision == "fp32"
    finally:
        collection.close()


@pytest.mark.skipif(INT8_UNITS, reason="this CPU runs int8: the fallback is the probe test's")
def test_without_int8_units_an_int8_build_is_recorded_and_reopened_as_fp32(
    indexes: dict[str, Path],
) -> None:
    """What a user of such a CPU gets: the index says what its vectors are (fp32), and opens so."""
    assert json.loads((indexes["int8"] / "manifest.json").read_text())["precision"] == "fp32"
    assert not (indexes["int8"] / "engines").exists()
    collection = open_collection(indexes["int8"], read_only=True)
    try:
        assert collection.embedder.backbone.precision == "fp32"
    finally:
        collection.close()


def _stored_vector(index: Path, image_id: int) -> np.ndarray:
    with ImageIndex.open(index, read_only=True) as opened:
        return opened.stored_vectors([image_id])[0]


def _embedded(index: Path, image: Path, precision: str) -> np.ndarray:
    collection = open_collection(index, precision=precision, read_only=True)
    try:
        return collection.embedder.embed_images([load_image(image)])[0]
    finally:
        collection.close()


@needs_int8_units
def test_an_open_defaults_to_the_precision_the_index_was_built_with(
    indexes: dict[str, Path],
) -> None:
    for precision in ("fp32", "int8"):
        collection = open_collection(indexes[precision], read_only=True)
        try:
            assert collection.embedder.backbone.precision == precision
        finally:
            collection.close()


@needs_int8_units
@pytest.mark.parametrize(("flag", "expected"), [([], "int8"), (["--precision", "fp32"], "fp32")])
def test_add_into_an_int8_index_runs_int8_unless_told_otherwise(
    indexes: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    flag: list[str], expected: str,
) -> None:
    index = Path(shutil.copytree(indexes["int8"], tmp_path / "index",
                                 ignore=shutil.ignore_patterns("lock")))
    new = tmp_path / "new.png"
    scene(321, (80, 60)).save(new)
    capsys.readouterr()
    assert main(["index", "add", "--index", str(index), str(new), "--no-progress", *flag]) == 0
    image_id = int(capsys.readouterr().out.splitlines()[-1].split("\t")[0])
    stored = _stored_vector(index, image_id)
    assert np.array_equal(stored, _embedded(index, new, expected))
    other = "fp32" if expected == "int8" else "int8"
    assert not np.allclose(stored, _embedded(index, new, other), atol=1e-6)


@needs_int8_units
def test_a_read_only_int8_search_caches_its_engine_outside_the_index(
    indexes: dict[str, Path], image_folder: Path, tmp_path: Path, user_cache: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    index = Path(shutil.copytree(indexes["fp32"], tmp_path / "fp32",
                                 ignore=shutil.ignore_patterns("lock", "engines")))
    before = sorted(p.relative_to(index) for p in index.rglob("*"))
    query = next(image_folder.rglob("img05.*"))
    search(capsys, index, query, "int8")
    assert sorted(p.relative_to(index) for p in index.rglob("*")) == before
    [pointer] = (user_cache / "cbir" / "engines").glob("*/int8.json")
    with caplog.at_level(logging.DEBUG, logger="retrieval._engines"):
        search(capsys, index, query, "int8")
    assert f"int8 engine loaded from {pointer.parent}" in caplog.text
