"""``cbir search`` with many queries, windows and regions: one process, one JSON line per query,
each equal to searching that query alone; a box equals the pre-cropped file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from indexer.cli import main
from indexer.search import CHUNK

BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]


@pytest.fixture(scope="module")
def built(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("search_cli") / "index"
    assert main(["index", "build", "--images", str(image_folder), "--index", str(index),
                 *BUILD]) == 0
    return index


def lines(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> list[Any]:
    capsys.readouterr()
    assert main(argv) == code
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def pairs(line: dict[str, Any]) -> list[tuple[int, float]]:
    return [(r["id"], r["score"]) for r in line["results"]]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_many_queries_equal_one_by_one(built: Path, image_folder: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(image_folder.rglob("img*"))
    folder = image_folder / "group1"
    argv = ["search", "--index", str(built), "-k", "4", "--json"]
    out = lines(capsys, [*argv, str(files[0]), str(folder), str(files[5])])
    folder_files = sorted(str(p) for p in folder.iterdir())
    assert [o["query"] for o in out] == [str(files[0]), *folder_files, str(files[5])]
    for line in out:
        alone = lines(capsys, [*argv, line["query"]])
        assert len(alone) == 1 and alone[0]["query"] == line["query"]
        assert_same(pairs(line), pairs(alone[0]))


def test_more_queries_than_a_chunk(built: Path, image_folder: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted(image_folder.rglob("img*"))] * 2
    assert len(files) > CHUNK
    out = lines(capsys, ["search", "--index", str(built), "-k", "2", "--json", *files])
    assert [o["query"] for o in out] == files
    assert [pairs(o) for o in out[:12]] == [pairs(o) for o in out[12:]]


def test_a_bad_query_fails_alone(built: Path, image_folder: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = str(next(image_folder.rglob("img01.*")))
    broken = str(image_folder / "group0" / "broken.jpg")
    capsys.readouterr()
    assert main(["search", "--index", str(built), "--json", good, broken, good]) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["query"] for line in captured.out.splitlines()] == [good, good]
    assert captured.err.strip().splitlines()[-1].startswith("cbir: error: ") and \
        "broken.jpg" in captured.err


def test_offset_and_min_score(built: Path, image_folder: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    query = str(next(image_folder.rglob("img03.*")))
    argv = ["search", "--index", str(built), query, "--json"]
    longer = pairs(lines(capsys, [*argv, "-k", "8"])[0])
    assert pairs(lines(capsys, [*argv, "-k", "5", "--offset", "3"])[0]) == longer[3:]
    threshold = longer[4][1]
    kept = pairs(lines(capsys, [*argv, "-k", "8", "--min-score", str(threshold)])[0])
    assert kept == [(i, s) for i, s in longer if s >= threshold]
    by_id = ["search", "--index", str(built), "--id", "4", "--json"]
    assert pairs(lines(capsys, [*by_id, "-k", "3", "--offset", "2"])[0]) == \
        pairs(lines(capsys, [*by_id, "-k", "5"])[0])[2:]


def test_bbox_equals_the_precropped_file(built: Path, image_folder: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = next(image_folder.rglob("img00.*"))
    image = Image.open(path).convert("RGB")
    box = (6, 3, image.width - 10, image.height - 20)
    image.crop(box).save(tmp_path / "crop.png")
    argv = ["search", "--index", str(built), "-k", "6", "--json"]
    cropped = pairs(lines(capsys, [*argv, str(tmp_path / "crop.png")])[0])
    got = pairs(lines(capsys, [*argv, str(path), "--bbox", ",".join(map(str, box))])[0])
    assert_same(got, cropped)
    stored = lines(capsys, [*argv, str(path)])[0]["results"][0]
    by_id = pairs(lines(capsys, [*argv, "-k", "5", "--id", str(stored["id"]),
                                 "--bbox", ",".join(map(str, box))])[0])
    assert_same(by_id, [(i, s) for i, s in cropped if i != stored["id"]][:5])


@pytest.mark.parametrize(("extra", "message"), [
    (["--bbox", "0,0,5000,10"], "outside"), (["--bbox", "9,0,9,10"], "empty or inverted"),
    (["--bbox", "1,2,3"], "four integers"), (["{folder}", "--bbox", "0,0,5,5"], "exactly one"),
    (["--offset", "-1"], "non-negative")])
def test_bad_inputs_exit_2_with_one_line(built: Path, image_folder: Path, extra: list[str],
                                         message: str, capsys: pytest.CaptureFixture[str]) -> None:
    query = str(next(image_folder.rglob("img00.*")))
    argv = [a.format(folder=image_folder) for a in extra]
    capsys.readouterr()
    assert main(["search", "--index", str(built), query, *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_text_output_has_column_names(built: Path, image_folder: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    query = str(next(image_folder.rglob("img00.*")))
    capsys.readouterr()
    assert main(["search", "--index", str(built), query, query, "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"query: {query}"
    assert out[1].split() == ["rank", "score", "id", "path"]
    assert out[2].split()[0] == "1" and len(out) == 8 and out[4] == f"query: {query}"


def test_folder_filter(built: Path, image_folder: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    query = str(next(image_folder.rglob("img03.*")))
    argv = ["search", "--index", str(built), query, "--json", "-k", "12"]
    every = lines(capsys, argv)[0]
    got = lines(capsys, [*argv, "--folder", "group2"])[0]
    assert_same(pairs(got), [(r["id"], r["score"]) for r in every["results"]
                             if Path(r["path"]).parent.name == "group2"])
    assert len(got["results"]) == 4
    for r in every["results"]:  # the directory under the indexed folder, as --folder names it
        want = Path(r["path"]).parent.relative_to(image_folder).as_posix()
        assert r["folder"] == ("" if want == "." else want)
    assert {r["folder"] for r in got["results"]} == {"group2"}
    capsys.readouterr()
    assert main([*argv, "--folder", "../x"]) == 2
    assert "'..'" in capsys.readouterr().err.strip().splitlines()[-1]
