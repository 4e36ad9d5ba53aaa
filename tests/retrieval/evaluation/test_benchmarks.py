"""Benchmark loaders on tiny synthetic copies of each standard layout (images are empty files)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import ConfigError, DatasetError, UnknownNameError
from retrieval.evaluation._benchmarks import (
    DEFAULT_SETUP,
    Benchmark,
    evaluate_benchmark,
    load_benchmark,
)
from retrieval.evaluation._metrics import QueryTruth


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def db_index(bench: Benchmark, stem: str) -> int:
    return [p.stem for p in bench.database].index(stem)


# --- Oxford5k / Paris6k -------------------------------------------------------------------------


def oxford_layout(root: Path) -> None:
    stems = ["all_souls_000001", "all_souls_000002", "all_souls_000003", "ashmolean_000001", "x_1"]
    touch(root, *(f"jpg/{s}.jpg" for s in stems))
    gt = root / "gt_files"
    write(gt / "all_souls_1_query.txt", "oxc1_all_souls_000001 136.5 34.1 648.5 955.7\n")
    write(gt / "all_souls_1_good.txt", "all_souls_000001\nall_souls_000002\n")
    write(gt / "all_souls_1_ok.txt", "all_souls_000003\n")
    write(gt / "all_souls_1_junk.txt", "ashmolean_000001\n")


def test_oxford_queries_boxes_and_truth(tmp_path: Path) -> None:
    oxford_layout(tmp_path)
    bench = load_benchmark("oxford5k", tmp_path)
    assert len(bench.database) == 5
    (query,) = bench.queries
    assert query.name == "all_souls_1"
    assert query.path == tmp_path / "jpg" / "all_souls_000001.jpg"  # oxc1_ prefix stripped
    assert query.box == (136.5, 34.1, 648.5, 955.7)  # x1 y1 x2 y2 as written, not x y w h
    q = db_index(bench, "all_souls_000001")
    assert query.database_index == q
    (truth,) = bench.truth()
    positives = {db_index(bench, f"all_souls_00000{i}") for i in (1, 2, 3)}
    assert truth == QueryTruth(
        frozenset(positives), frozenset({db_index(bench, "ashmolean_000001")})
    )
    assert q in truth.positives and not truth.exclude  # the query image counts, as in compute_ap


def test_oxford_end_to_end_map(tmp_path: Path) -> None:
    oxford_layout(tmp_path)
    bench = load_benchmark("oxford5k", tmp_path)
    order = ["ashmolean_000001", "all_souls_000001", "x_1", "all_souls_000002", "all_souls_000003"]
    scores = np.zeros((1, 5), dtype=np.float32)
    for value, stem in zip([5, 4, 3, 2, 1], order, strict=True):
        scores[0, db_index(bench, stem)] = value
    # junk removed: q x p p -> positives at r=0 (j=0), r=2 (j=1), r=3 (j=2), n_pos=3
    # (1+1)/2 + (1/2+2/3)/2 + (2/3+3/4)/2 = 1 + 7/12 + 17/24 = 55/24, divided by 3 -> 55/72
    (result,) = evaluate_benchmark(bench, scores=scores).values()
    assert result.mean_ap == pytest.approx(55 / 72)
    with pytest.raises(ConfigError):
        evaluate_benchmark(bench, scores=scores[:, :4])


def test_paris_nested_folders_without_prefix(tmp_path: Path) -> None:
    touch(tmp_path, "jpg/defense/paris_defense_000001.jpg", "jpg/defense/paris_defense_000002.jpg")
    touch(tmp_path, "jpg/eiffel/paris_eiffel_000001.jpg")
    gt = tmp_path / "gt_files"
    write(gt / "defense_1_query.txt", "paris_defense_000001 1 2.5 30 40\n")
    write(gt / "defense_1_good.txt", "paris_defense_000002\n")
    write(gt / "defense_1_ok.txt", "")
    write(gt / "defense_1_junk.txt", "paris_eiffel_000001\n")
    bench = load_benchmark("paris6k", tmp_path)
    (query,) = bench.queries
    assert query.path == tmp_path / "jpg/defense/paris_defense_000001.jpg"
    assert query.box == (1.0, 2.5, 30.0, 40.0)
    assert bench.truth()[0].positives == {db_index(bench, "paris_defense_000002")}


def test_oxford_missing_gt_folder_names_it_and_the_url(tmp_path: Path) -> None:
    touch(tmp_path, "jpg/a.jpg")
    with pytest.raises(DatasetError, match=r"gt_files.*robots\.ox\.ac\.uk/~vgg/data/oxbuildings"):
        load_benchmark("oxford5k", tmp_path)
    with pytest.raises(DatasetError, match="parisbuildings"):
        load_benchmark("paris6k", tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("all_souls_1_query.txt", "oxc1_all_souls_000001 1 2 3\n", "x1 y1 x2 y2"),
        ("all_souls_1_query.txt", "oxc1_nosuch_000001 1 2 3 4\n", "nosuch_000001"),
        ("all_souls_1_ok.txt", "all_souls_000009\n", "all_souls_000009"),
    ],
)
def test_oxford_malformed_files(tmp_path: Path, name: str, content: str, match: str) -> None:
    oxford_layout(tmp_path)
    write(tmp_path / "gt_files" / name, content)
    with pytest.raises(DatasetError, match=match):
        load_benchmark("oxford5k", tmp_path)


def test_oxford_missing_list_is_named(tmp_path: Path) -> None:
    oxford_layout(tmp_path)
    (tmp_path / "gt_files" / "all_souls_1_junk.txt").unlink()
    with pytest.raises(DatasetError, match=r"all_souls_1_junk\.txt"):
        load_benchmark("oxford5k", tmp_path)


# --- ROxford5k / RParis6k -----------------------------------------------------------------------


def revisited_layout(folder: Path, name: str = "roxford5k") -> None:
    touch(folder, *(f"jpg/{s}.jpg" for s in ["a", "b", "c", "d", "q1"]))
    gnd = [
        {
            "bbx": np.array([1.5, 2.0, 10.0, 20.25]),
            "easy": np.array([0]),
            "hard": np.array([1]),
            "junk": np.array([2]),
        }
    ]
    data = {"imlist": ["a", "b", "c", "d"], "qimlist": ["q1"], "gnd": gnd}
    with (folder / f"gnd_{name}.pkl").open("wb") as f:
        pickle.dump(data, f)


def test_revisited_setups_and_scores(tmp_path: Path) -> None:
    revisited_layout(tmp_path)
    bench = load_benchmark("roxford5k", tmp_path)
    assert bench.database == tuple(tmp_path / "jpg" / f"{s}.jpg" for s in "abcd")
    (query,) = bench.queries
    assert (query.name, query.box, query.database_index) == ("q1", (1.5, 2.0, 10.0, 20.25), None)
    assert bench.setups == ("easy", "medium", "hard")
    assert bench.truth("easy") == (QueryTruth.of([0], junk=[1, 2]),)
    assert bench.truth("medium") == (QueryTruth.of([0, 1], junk=[2]),)
    assert bench.truth("hard") == (QueryTruth.of([1], junk=[0, 2]),)
    # ranking d c b a. easy: d a -> r=1: (0 + 1/2)/2 = 1/4; hard: d b -> 1/4;
    # medium: d b a -> (0 + 1/2)/2/2 + (1/2 + 2/3)/2/2 = 1/8 + 7/24 = 5/12
    scores = np.array([[0.1, 0.5, 0.7, 0.9]])
    results = evaluate_benchmark(bench, scores=scores)
    assert {s: r.mean_ap for s, r in results.items()} == pytest.approx(
        {"easy": 0.25, "medium": 5 / 12, "hard": 0.25}
    )
    assert results["medium"].mean_precision_at[5] == pytest.approx(2 / 3)  # kq = min(3, 5)


def test_revisited_one_setup_and_nested_root(tmp_path: Path) -> None:
    revisited_layout(tmp_path / "rparis6k", "rparis6k")
    bench = load_benchmark("rparis6k", tmp_path, setup="hard")
    assert bench.setups == ("hard",)
    assert bench.truth() == (QueryTruth.of([1], junk=[0, 2]),)
    with pytest.raises(UnknownNameError):
        load_benchmark("rparis6k", tmp_path, setup="extreme")


def test_revisited_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"gnd_roxford5k\.pkl.*cmp\.felk\.cvut\.cz/revisitop"):
        load_benchmark("roxford5k", tmp_path)
    revisited_layout(tmp_path)
    (tmp_path / "jpg" / "c.jpg").unlink()
    with pytest.raises(DatasetError, match=r"c\.jpg"):
        load_benchmark("roxford5k", tmp_path)
    (tmp_path / "gnd_roxford5k.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="cannot read"):
        load_benchmark("roxford5k", tmp_path)


# --- Holidays, UKBench, labelled folders --------------------------------------------------------

HOLIDAYS = ["100000", "100001", "100002", "100100", "100101", "100200"]


def test_holidays_groups_queries_and_exclusion(tmp_path: Path) -> None:
    touch(tmp_path, *(f"jpg/{s}.jpg" for s in HOLIDAYS))
    bench = load_benchmark("holidays", tmp_path)
    assert [q.name for q in bench.queries] == ["100000", "100100", "100200"]
    assert bench.truth() == (
        QueryTruth.of([1, 2], exclude=[0]),
        QueryTruth.of([4], exclude=[3]),
        QueryTruth.of([], exclude=[5]),  # a group of one: skipped at evaluation
    )
    group = np.array([0, 0, 0, 1, 1, 2])
    scores = (group[[0, 3, 5], None] == group[None, :]).astype(np.float32)  # its group first
    result = evaluate_benchmark(bench, scores=scores)[DEFAULT_SETUP]
    assert (result.n_queries, result.n_skipped, result.skipped) == (3, 1, ("100200",))
    assert result.mean_ap == pytest.approx(1.0)  # itself excluded, its group right after


def test_holidays_rotated_folder(tmp_path: Path) -> None:
    touch(tmp_path, *(f"jpg/{s}.jpg" for s in HOLIDAYS))
    with pytest.raises(DatasetError, match=r"jpg_rotated.*lear\.inrialpes\.fr"):
        load_benchmark("holidays", tmp_path, rotated=True)
    touch(tmp_path, "jpg_rotated/100000.jpg", "jpg_rotated/100001.jpg")
    bench = load_benchmark("holidays", tmp_path, rotated=True)
    assert bench.database[0] == tmp_path / "jpg_rotated" / "100000.jpg"
    touch(tmp_path, "mine/100000.jpg")
    assert len(load_benchmark("holidays", tmp_path, rotated=tmp_path / "mine").database) == 1
    touch(tmp_path, "jpg/holiday.jpg")
    with pytest.raises(DatasetError, match=r"holiday\.jpg"):
        load_benchmark("holidays", tmp_path)


def test_ukbench_every_image_queries_its_group_of_four(tmp_path: Path) -> None:
    touch(tmp_path, *(f"full/ukbench{i:05d}.jpg" for i in range(8)))
    bench = load_benchmark("ukbench", tmp_path)
    assert len(bench.queries) == 8 and bench.ns
    assert bench.truth()[5] == QueryTruth.of([4, 5, 6, 7])  # itself included, nothing excluded
    # ranking each query's group first in id order: top 4 = the group -> N-S = 4
    group = np.arange(8) // 4
    scores = (group[:, None] == group[None, :]).astype(np.float32)
    assert evaluate_benchmark(bench, scores=scores)[DEFAULT_SETUP].ns_score == pytest.approx(4.0)
    (tmp_path / "full" / "ukbench00007.jpg").unlink()
    with pytest.raises(DatasetError, match="incomplete"):
        load_benchmark("ukbench", tmp_path)
    with pytest.raises(DatasetError, match=r"full.*archive\.org"):
        load_benchmark("ukbench", tmp_path / "full")


def test_folders_leave_one_out(tmp_path: Path) -> None:
    touch(tmp_path, "db/a/1.jpg", "db/a/2.jpg", "db/b/3.jpg", "db/b/sub/4.jpg", "db/c/5.png")
    bench = load_benchmark("folders", tmp_path / "db")
    assert [q.name for q in bench.queries] == [
        "a/1.jpg",
        "a/2.jpg",
        "b/3.jpg",
        "b/sub/4.jpg",
        "c/5.png",
    ]
    assert [q.database_index for q in bench.queries] == [0, 1, 2, 3, 4]
    assert bench.truth() == (
        QueryTruth.of([1], exclude=[0]),
        QueryTruth.of([0], exclude=[1]),
        QueryTruth.of([3], exclude=[2]),
        QueryTruth.of([2], exclude=[3]),
        QueryTruth.of([], exclude=[4]),
    )


def test_folders_with_separate_queries(tmp_path: Path) -> None:
    touch(tmp_path, "db/a/1.jpg", "db/a/2.jpg", "db/b/3.jpg", "q/a/x.jpg", "q/z/y.jpg")
    bench = load_benchmark("folders", tmp_path / "db", queries=tmp_path / "q")
    assert [(q.name, q.database_index) for q in bench.queries] == [
        ("a/x.jpg", None),
        ("z/y.jpg", None),
    ]
    assert bench.truth() == (QueryTruth.of([0, 1]), QueryTruth.of([]))
    touch(tmp_path, "db/loose.jpg")
    with pytest.raises(DatasetError, match=r"loose\.jpg"):
        load_benchmark("folders", tmp_path / "db")


# --- registry -----------------------------------------------------------------------------------


def test_registry_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        load_benchmark("coco", tmp_path)
    assert "oxford5k" in info.value.choices and "folders" in info.value.choices
    with pytest.raises(ConfigError, match="rotated"):
        load_benchmark("oxford5k", tmp_path, rotated=True)
    with pytest.raises(ConfigError, match="queries"):
        load_benchmark("ukbench", tmp_path, queries=tmp_path)
    touch(tmp_path, "full/ukbench00000.jpg", "full/ukbench00001.jpg")
    touch(tmp_path, "full/ukbench00002.jpg", "full/ukbench00003.jpg")
    assert len(load_benchmark("UKBench", str(tmp_path)).queries) == 4
