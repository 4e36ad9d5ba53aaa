"""The first hour of a new user: refusals before anything is made, one-line errors, all-or-nothing.

Each test is one stumble a user met (issue 21), run through the CLI as a user runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer.cli import main
from retrieval.index import ImageIndex

BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]
REPO = Path(__file__).resolve().parents[2]


def build(images: Path, index: Path, *extra: str) -> int:
    return main(["index", "build", "--images", str(images), "--index", str(index), *BUILD,
                 *extra])


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("cbir: error") or not line.startswith(("cbir: ", "WARNING"))]


@pytest.fixture(scope="module")
def built(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("first-hour") / "index"
    assert build(image_folder, index) == 0
    return index


@pytest.fixture()
def index_copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "index", ignore=shutil.ignore_patterns("lock")))


def test_dba_on_hnsw_is_refused_before_the_directory_is_created(
    image_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = tmp_path / "idx"
    with caplog.at_level("INFO"):
        assert build(image_folder, index, "--dba", "2", "--faiss", "HNSW32") == 2
    assert "created index" not in caplog.text
    assert not index.exists()
    [line] = error_lines(capsys)
    assert "--dba 2" in line and "HNSW32" in line
    assert build(image_folder, index, "--faiss", "HNSW32") == 0  # the next try just works


def test_ivf_with_more_lists_than_images_is_refused_before_embedding(
    image_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = tmp_path / "idx"
    listed = sum(1 for p in image_folder.rglob("*") if p.is_file())
    with caplog.at_level("INFO"):
        assert build(image_folder, index, "--faiss", "IVF1024,Flat") == 2
    assert "created index" not in caplog.text and not index.exists()
    [line] = error_lines(capsys)
    assert f"needs at least 1024 images to train" in line
    assert f"{listed} images were found under {image_folder}" in line
    assert "--faiss Flat" in line


def test_remove_is_all_or_nothing(index_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["index", "remove", "--index", str(index_copy), "5", "9999", "8888"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("cbir: error: no image with id 9999, 8888") and "nothing removed" in line
    with ImageIndex.open(index_copy, read_only=True) as index:
        assert index.count == 12 and index.records([5])
    assert main(["index", "remove", "--index", str(index_copy), "5", "6"]) == 0
    assert capsys.readouterr().out == "removed 2 images\n"


def test_a_text_file_as_weights_is_one_line(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["index", "build", "--images", str(image_folder), "--index", str(tmp_path / "i"),
            "--backbone", "squeezenet1_1", "--weights", str(REPO / "README.md"), "--no-progress"]
    assert main(argv) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"cbir: error: weights file {REPO / 'README.md'} is not a PyTorch weights "
                    "file (a state dict saved with torch.save, .pth/.pt)")
