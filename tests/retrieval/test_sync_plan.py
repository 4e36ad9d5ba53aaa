"""plan_sync: the pure comparison of stored records with a folder scan (no files read: the
digest is a dict, and a digest that must not be called raises)."""

from __future__ import annotations

import pytest

from retrieval import FileStamp, plan_sync
from retrieval._sync_plan import within


def never(path: str) -> str | None:
    raise AssertionError(f"{path} was read although its stamp matches")


def test_new_changed_unchanged_removed() -> None:
    stored = {"/f/a.jpg": [(1, "A")], "/f/b.jpg": [(2, "B")], "/f/gone.jpg": [(3, "G")]}
    scanned = {"/f/a.jpg": (10, 100), "/f/b.jpg": (11, 200), "/f/new.jpg": (12, 300)}
    digests = {"/f/a.jpg": "A", "/f/b.jpg": "B2", "/f/new.jpg": "N"}
    plan = plan_sync(stored, scanned, {}, digests.get)
    assert plan.add == ["/f/new.jpg"]
    assert plan.reembed == {"/f/b.jpg": [2]}
    assert plan.remove == [3] and plan.repoint == {} and plan.unchanged == 1
    assert plan.stamps["/f/a.jpg"] == FileStamp(10, 100, "A")
    assert plan.stamps["/f/b.jpg"] == FileStamp(11, 200, "B2")
    assert plan.counts() == {"added": 1, "reembedded": 1, "moved": 0, "removed": 1,
                             "unchanged": 1}


def test_a_matching_stamp_spares_the_read_and_a_moved_mtime_costs_one() -> None:
    stored = {"/f/a.jpg": [(1, "A")], "/f/b.jpg": [(2, "B")]}
    scanned = {"/f/a.jpg": (10, 100), "/f/b.jpg": (11, 201)}
    stamps = {"/f/a.jpg": FileStamp(10, 100, "A"), "/f/b.jpg": FileStamp(11, 200, "B")}
    read: list[str] = []

    def digest(path: str) -> str:
        assert path != "/f/a.jpg", "read although its stamp matches"
        read.append(path)
        return "B"  # touched, same content

    plan = plan_sync(stored, scanned, stamps, digest)
    assert plan.empty and plan.unchanged == 2 and read == ["/f/b.jpg"]
    assert plan.stamps["/f/b.jpg"] == FileStamp(11, 201, "B")


def test_a_stamp_that_names_other_content_re_embeds_without_a_read() -> None:
    """The stamp says what the file holds at this size and mtime; the record disagrees."""
    plan = plan_sync({"/f/a.jpg": [(1, "OLD")]}, {"/f/a.jpg": (5, 6)},
                     {"/f/a.jpg": FileStamp(5, 6, "NEW")}, never)
    assert plan.reembed == {"/f/a.jpg": [1]}


def test_moves_are_re_pointed_copies_and_the_rest_added() -> None:
    stored = {"/f/a.jpg": [(1, "A")], "/f/b.jpg": [(2, "B")], "/f/c.jpg": [(3, "C")]}
    scanned = {"/f/a.jpg": (1, 1), "/f/sub/b.jpg": (2, 2), "/f/copy-of-a.jpg": (1, 1),
               "/f/other.jpg": (3, 3)}
    digests = {"/f/a.jpg": "A", "/f/sub/b.jpg": "B", "/f/copy-of-a.jpg": "A",
               "/f/other.jpg": "X"}
    plan = plan_sync(stored, scanned, {}, digests.get)
    assert plan.repoint == {2: "/f/sub/b.jpg"}
    assert plan.add == ["/f/copy-of-a.jpg", "/f/other.jpg"]  # a copy is its own record
    assert plan.remove == [3] and plan.unchanged == 1


def test_two_moved_copies_of_one_content_each_keep_a_record() -> None:
    stored = {"/f/x1.jpg": [(1, "S")], "/f/x2.jpg": [(2, "S")]}
    scanned = {"/f/y1.jpg": (1, 1), "/f/y2.jpg": (1, 1), "/f/y3.jpg": (1, 1)}
    plan = plan_sync(stored, scanned, {}, lambda p: "S")
    assert sorted(plan.repoint) == [1, 2] and sorted(plan.repoint.values()) == [
        "/f/y1.jpg", "/f/y2.jpg"]
    assert plan.add == ["/f/y3.jpg"] and plan.remove == []


def test_new_files_are_not_read_when_nothing_vanished() -> None:
    plan = plan_sync({"/f/a.jpg": [(1, "A")]}, {"/f/a.jpg": (1, 1), "/f/n.jpg": (2, 2)},
                     {"/f/a.jpg": FileStamp(1, 1, "A")}, never)
    assert plan.add == ["/f/n.jpg"] and plan.stamps["/f/n.jpg"] == FileStamp(2, 2, "")


def test_an_unreadable_stored_file_waits_for_the_next_round() -> None:
    plan = plan_sync({"/f/a.jpg": [(1, "A")]}, {"/f/a.jpg": (1, 1)}, {}, lambda p: None)
    assert plan.empty and plan.unchanged == 0 and "/f/a.jpg" not in plan.stamps


def test_doubled_records_at_one_path_are_all_replaced_or_removed() -> None:
    stored = {"/f/a.jpg": [(1, "A"), (4, "A")], "/f/b.jpg": [(2, "B"), (5, "B")]}
    plan = plan_sync(stored, {"/f/a.jpg": (1, 1)}, {}, {"/f/a.jpg": "A2"}.get)
    assert plan.reembed == {"/f/a.jpg": [1, 4]} and plan.remove == [2, 5]


@pytest.mark.parametrize(("roots", "expected"), [
    (["/f/sub"], {"/f/sub/a.jpg", "/f/sub"}),
    (["/f/sub/"], {"/f/sub/a.jpg", "/f/sub"}),
    (["/f/a.jpg"], {"/f/a.jpg"}),
    (["/f"], {"/f/a.jpg", "/f/sub/a.jpg", "/f/sub", "/f/subway.jpg"}),
])
def test_within(roots: list[str], expected: set[str]) -> None:
    paths = ["/f/a.jpg", "/f/sub/a.jpg", "/f/sub", "/f/subway.jpg", "/g/a.jpg"]
    assert within(paths, roots) == expected


def test_a_file_that_could_not_be_decoded_waits_until_it_changes() -> None:
    stamps = {"/f/bad.jpg": FileStamp(3, 4, unreadable=True)}
    plan = plan_sync({}, {"/f/bad.jpg": (3, 4)}, stamps, never)
    assert plan.empty and plan.stamps["/f/bad.jpg"] == stamps["/f/bad.jpg"]
    assert plan_sync({}, {"/f/bad.jpg": (9, 4)}, stamps, never).add == ["/f/bad.jpg"]
