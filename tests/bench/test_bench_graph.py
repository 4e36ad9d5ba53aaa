from bench.graph import measure


def test_graph_part_measures_a_small_index_and_checks_its_rows() -> None:
    figures = measure(600)
    assert figures["images"] == 600 and figures["sampled_rows_exact"] is True
    assert len(figures["add_ms"]) == 9 and len(figures["open_s_runs"]) == 3
    for key in ("build_s", "first_close_s", "open_s", "open_without_snapshot_s",
                "remove_ms", "store_mb"):
        assert figures[key] >= 0, key
