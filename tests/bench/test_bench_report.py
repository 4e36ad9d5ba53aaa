import json
from pathlib import Path

from bench.report import PartResult, Target, summary_lines, write_result


def test_targets_and_results_round_trip(tmp_path: Path) -> None:
    higher = Target("efficiency", 0.93, 0.9)
    lower = Target("p50 / bare", 1.3, 1.2, higher_is_better=False)
    assert higher.met and not lower.met
    result = PartResult("indexing", "title", figures={"x": 1}, targets=[higher, lower],
                        notes=["a note"])
    path = write_result(result, {"cpu": "test"}, "quick", tmp_path)
    assert path == tmp_path / "indexing.quick.json" and not list(tmp_path.glob("*.tmp"))
    assert write_result(result, {}, "default", tmp_path) == tmp_path / "indexing.json"
    data = json.loads(path.read_text())
    assert data["mode"] == "quick" and data["machine"] == {"cpu": "test"}
    assert [t["met"] for t in data["targets"]] == [True, False]
    lines = summary_lines(result)
    assert "NOT met" in lines[2] and lines[-1].strip() == "a note"


def test_skipped_part_says_why(tmp_path: Path) -> None:
    result = PartResult("gpu", "title", status="skipped", reason="no CUDA device")
    assert "skipped" in summary_lines(result)[0] and "no CUDA device" in summary_lines(result)[0]
