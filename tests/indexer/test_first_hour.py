"""The first hour of a new user: refusals before anything is made, one-line errors, all-or-nothing.

Each test is one stumble a user met (issue 21), run through the CLI as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.cli import build_parser, main
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


def test_dba_on_hnsw_builds_and_info_shows_the_kept_graph(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    index = tmp_path / "idx"
    assert build(image_folder, index, "--dba", "2", "--faiss", "HNSW32", "--graph-k", "5") == 0
    with ImageIndex.open(index) as opened:
        assert opened.graph_k == 5 and opened.manifest.dba_k == 2
        assert opened.neighbours([1]).I[0, 0] > 1
    capsys.readouterr()
    assert main(["index", "info", "--index", str(index)]) == 0
    out = capsys.readouterr().out
    assert "5 neighbours per image, kept with every add and remove" in out
    assert main(["index", "info", "--index", str(index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["graph_k"] == 5
    assert build(image_folder, tmp_path / "bad", "--graph-k", "999") == 2
    assert "--graph-k" in capsys.readouterr().err


@pytest.mark.parametrize("pooling", [[], ["--pooling", "mop", "--mop-k", "2"]],
                         ids=["dimension known at once", "dimension known once fitted"])
def test_ivf_with_more_lists_than_images_is_refused_before_embedding(
    image_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str], pooling: list[str],
) -> None:
    index = tmp_path / "idx"
    listed = sum(1 for p in image_folder.rglob("*") if p.is_file())
    with caplog.at_level("INFO"):
        assert build(image_folder, index, "--faiss", "IVF1024,Flat", *pooling) == 2
    assert "created index" not in caplog.text and not index.exists()
    [line] = error_lines(capsys)
    assert "needs at least 1024 images to train" in line
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


def _parsers(parser: argparse.ArgumentParser, name: str = "cbir"
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_flag_has_help_and_a_readable_metavar() -> None:
    problems = []
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            flag = "/".join(action.option_strings) or action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                problems.append(f"{name} {flag}: no help")
        usage = parser.format_help()
        if "__" in usage:
            problems.append(f"{name}: an internal name in its help: "
                            f"{[w for w in usage.split() if '__' in w][:3]}")
    assert problems == []


def test_cbir_help_is_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and "turn errors into exit codes" not in out
    assert "image search" in out and "cbir index build" in out


def test_opening_an_index_logs_at_debug_only(
    built: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level("DEBUG"):
        assert main(["search", "--index", str(built), "--id", "1", "-k", "2"]) == 0
    opened = [r for r in caplog.records if "loaded snapshot" in r.getMessage()]
    assert opened and all(r.levelname == "DEBUG" for r in opened)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO
                and r.name.startswith("retrieval.index")]


@pytest.mark.shared
def test_demo_runs_on_a_local_weights_file_and_leaves_out_the_tiff_calmly(
    squeezenet_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``make run BACKBONE=squeezenet1_1 WEIGHTS=FILE``: the file's weights, not random ones;
    scikit-image's multi-page TIFF is one calm line, not a warning."""
    pytest.importorskip("skimage")
    index = tmp_path / "demo"
    with caplog.at_level(logging.WARNING):
        assert main(["demo", "--no-serve", "--backbone", "squeezenet1_1", "--weights",
                     str(squeezenet_weights), "--max-side", "64", "--index", str(index)]) == 0
    out = capsys.readouterr().out
    assert "left out 1 files the decoder does not take: multipage_rgb.tif" in out
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["backbone"] == "squeezenet1_1"
    assert manifest["weights_file"] == str(squeezenet_weights.resolve())
    assert not manifest["weights"].startswith("random")


@pytest.mark.parametrize(("argv", "verbose", "quiet"), [
    (["search", "--index", "I", "q.jpg"], False, False),
    (["-v", "search", "--index", "I", "q.jpg"], True, False),
    (["search", "--index", "I", "q.jpg", "-v"], True, False),
    (["index", "add", "-q", "--index", "I", "a.jpg"], False, True),
])
def test_verbosity_flags_go_before_or_after_the_command(
    argv: list[str], verbose: bool, quiet: bool,
) -> None:
    args = build_parser(argv).parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_a_bad_factory_string_is_one_plain_line(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert build(image_folder, tmp_path / "idx", "--faiss", "Bogus") == 2
    [line] = error_lines(capsys)
    assert line == "cbir: error: faiss cannot build 'Bogus' for d=512: could not parse index " \
                   "string Bogus"
    assert not (tmp_path / "idx").exists()


def test_resuming_an_ivf_that_cannot_be_trained_is_refused_before_embedding(
    empty_ivf: Path, image_folder: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert build(image_folder, empty_ivf, "--resume", "--faiss", "IVF16,Flat") == 2
    [line] = error_lines(capsys)
    assert "needs at least 16 images to train" in line
    with ImageIndex.open(empty_ivf, read_only=True) as index:
        assert index.count == 0
