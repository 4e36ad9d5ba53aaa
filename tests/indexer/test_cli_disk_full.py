"""``cbir index add`` / ``remove`` on a full disk (a real, small tmpfs): one error line, exit 1,
the index unchanged, and the same commands succeed once space has been freed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer.cli import main
from retrieval.index import ImageIndex
from tests.conftest import scene
from tests.small_disk import fill, small_disk

BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]


def count(index: Path) -> int:
    with ImageIndex.open(index, read_only=True) as opened:
        return opened.count


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if "error" in line.lower()]


def test_add_and_remove_on_a_full_disk(image_folder: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    built = tmp_path / "built"
    assert main(["index", "build", "--images", str(image_folder), "--index", str(built),
                 *BUILD]) == 0
    new = tmp_path / "new.png"
    scene(501, (70, 90)).save(new)
    with small_disk(tmp_path / "disk", "16m") as disk:
        index = Path(shutil.copytree(built, disk / "index"))
        before = count(index)
        filler = fill(disk)
        capsys.readouterr()
        assert main(["index", "add", "--index", str(index), str(new), "--no-progress"]) == 1
        lines = error_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("cbir: error:") and "full" in lines[0]
        assert main(["index", "remove", "--index", str(index), "1"]) == 1
        lines = error_lines(capsys)
        assert len(lines) == 1 and "full" in lines[0]
        filler.unlink()
        assert count(index) == before
        assert main(["index", "add", "--index", str(index), str(new), "--no-progress"]) == 0
        assert main(["index", "remove", "--index", str(index), "1"]) == 0
        assert count(index) == before
