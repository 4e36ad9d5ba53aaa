from bench.graph import measure


def test_graph_part_measures_a_small_index_and_checks_its_rows() -> None:
    figures = measure(600)
    assert figures["images"] == 600 and figures["sampled_rows_exact"] is True
    assert len(figures["add_ms"]) == 5
    for key in ("keeper_build_s", "index_fill_s", "open_s", "open_without_snapshot_s",
                "remove_ms", "store_mb"):
        assert figures[key] >= 0, key
