"""Reports: rows best first in every output, per-setup columns for the revisited benchmarks."""

import json
import math
from pathlib import Path

from retrieval.evaluation._metrics import EvaluationResult
from retrieval.evaluation._report import ResultRow, markdown_table, sort_best_first, write_results


def result(m_ap: float, ns: float | None = None) -> EvaluationResult:
    return EvaluationResult("trapezoidal", m_ap, {1: 1.0, 5: 0.5, 10: 0.25}, ns, 3, 0, ())


def test_rows_are_written_best_first(tmp_path: Path) -> None:
    rows = [ResultRow.of("sum", False, 512, {"default": result(0.5)}),
            ResultRow.of("max", True, 511, {"default": result(0.75)}),
            ResultRow.of("gem", False, 512, {"default": result(math.nan)}),
            ResultRow.of("avg", False, 512, {"default": result(0.6)})]
    paths = write_results(tmp_path / "out", {"dataset": "folders"}, rows, "title")
    doc = json.loads(paths["json"].read_text())
    assert [(r["pooling"], r["mAP"]) for r in doc["results"]] == [
        ("max", 0.75), ("avg", 0.6), ("sum", 0.5), ("gem", None)]  # NaN last, as null
    assert doc["results"][0] == {"pooling": "max", "whiten": True, "dim": 511, "mAP": 0.75,
                                 "mP@1": 1.0, "mP@5": 0.5, "mP@10": 0.25}
    table = [line for line in paths["md"].read_text().splitlines() if line.startswith("| ")]
    assert table[0] == "| pooling | whiten | dim | mAP | mP@1 | mP@5 | mP@10 |"
    assert table[1] == "| max | yes | 511 | 0.750 | 1.000 | 0.500 | 0.250 |"
    assert [line.split(" | ")[0] for line in table[2:]] == ["| avg", "| sum", "| gem"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_revisited_rows_report_every_setup_and_rank_by_medium(tmp_path: Path) -> None:
    def row(pooling: str, e: float, m: float, h: float) -> ResultRow:
        return ResultRow.of(pooling, False, 512, {"easy": result(e), "medium": result(m),
                                                  "hard": result(h)})

    rows = sort_best_first([row("sum", 0.9, 0.5, 0.2), row("gem", 0.8, 0.6, 0.3)])
    assert [r.pooling for r in rows] == ["gem", "sum"]
    doc = rows[0].to_json()
    assert doc["mAP"] == 0.6 and doc["setup"] == "medium"
    assert doc["setups"]["hard"]["mAP"] == 0.3  # type: ignore[index]
    head = markdown_table(rows).splitlines()[0]
    assert head == ("| pooling | whiten | dim | mAP E | mAP M | mAP H | mP@10 E | mP@10 M "
                    "| mP@10 H |")
    paths = write_results(tmp_path, {"dataset": "roxford5k"}, rows, "t")
    assert paths["png"].stat().st_size > 1000


def test_ns_score_is_a_column_for_ukbench() -> None:
    table = markdown_table([ResultRow.of("sum", False, 512, {"default": result(0.9, 3.5)})])
    assert table.splitlines()[0].endswith("| mP@10 | N-S |")
    assert table.splitlines()[2].endswith("| 3.500 |")
